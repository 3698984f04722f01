"""The one model loader: a stored model with the precision that suits this device or task.

Training, chat and compare load with policy "auto" (see localsft/platform/backend.py);
exports load with AS_TRAINED (fp32, quantized weights expanded as training sees them).
Adapters go on with localsft.models.adapters.attach_adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map

from localsft.platform.backend import Precision, choose_precision
from localsft.errors import UserError
from localsft.models.store import _count_parameters, resolve_model


@dataclass
class LoadedModel:
    """A model ready to run: the mlx-lm module, its tokenizer wrapper, where it came from."""

    model: nn.Module
    tokenizer: object  # mlx_lm.tokenizer_utils.TokenizerWrapper
    path: Path
    config: dict  # config.json as it fits the weights in memory (no quantization once expanded)
    precision: Precision
    stored_dtype: str = "float32"  # float type of the stored weights (a quantized model's scales)
    stored_bits: int | None = None  # bits of the stored weights when they are quantized

FLOAT_TYPES = ("float32", "float16", "bfloat16")


def _has_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules())


def dequantize(model: nn.Module, dtype=mx.float32) -> nn.Module:
    """Replace quantized layers by plain ones, computing `scale * q + bias` in `dtype`.

    (mlx-lm's dequantize_model computes in the scales' dtype, fp16 for GGUF files,
    which rounds every weight to fp16: logits then drift ~0.1 from the reference.)
    """
    from mlx.utils import tree_unflatten

    replaced = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            continue
        weight = mx.dequantize(module.weight, module.scales.astype(dtype), module.biases.astype(dtype),
                               module.group_size, module.bits)
        if isinstance(module, nn.QuantizedEmbedding):
            plain = nn.Embedding(*weight.shape)
        else:
            plain = nn.Linear(weight.shape[1], weight.shape[0], bias="bias" in module)
            if "bias" in module:
                plain.bias = module.bias
        plain.weight = weight
        replaced.append((name, plain))
    if replaced:
        model.update_modules(tree_unflatten(replaced))
    return model


def apply_precision(model: nn.Module, precision: Precision) -> nn.Module:
    """Dequantize and cast frozen weights in place as `precision` says."""
    if precision.dequantize and _has_quantized(model):
        model = dequantize(model)
    if precision.dtype in ("float32", "float16", "bfloat16"):
        dtype = getattr(mx, precision.dtype)
        def cast(a: mx.array) -> mx.array:  # leave arrays already in `dtype` alone (no copy)
            return a.astype(dtype) if mx.issubdtype(a.dtype, mx.floating) and a.dtype != dtype else a

        model.update(tree_map(cast, model.parameters()))
    mx.eval(model.parameters())
    return model


def _weights_dtype(model: nn.Module) -> str:
    """The float type of the model's largest float weights (for a quantized model: its scales' type)."""
    biggest = max((v for _, v in tree_flatten(model.parameters()) if mx.issubdtype(v.dtype, mx.floating)),
                  key=lambda v: v.size)
    name = str(biggest.dtype).removeprefix("mlx.core.")
    return name if name in FLOAT_TYPES else "float32"


def load_model(name_or_path: str | Path | None = None, precision: str = "auto") -> LoadedModel:
    """Load a model from the store or a model folder (None: the default model).

    precision: "auto" (what suits this device), "float32", "float16", "bfloat16",
    "quantized", or AS_TRAINED for merges and exports.
    """
    import mlx_lm

    path = resolve_model(str(name_or_path) if name_or_path else None)
    config = json.loads((path / "config.json").read_text())
    chosen = choose_precision(precision, fp32_bytes=4 * _count_parameters(config))
    try:
        model, tokenizer = mlx_lm.load(str(path), lazy=True)
    except ValueError as err:
        raise UserError(f"Cannot load the model in {path}: {err}") from None
    stored_dtype = _weights_dtype(model)
    bits = (config.get("quantization") or config.get("quantization_config") or {}).get("bits")
    model = apply_precision(model, chosen)
    model.eval()
    if not _has_quantized(model):
        config = {k: v for k, v in config.items() if k not in ("quantization", "quantization_config")}
    return LoadedModel(model, tokenizer, path, config, chosen, stored_dtype, bits)


def load_tokenizer(name_or_path: str | None = None):
    """The mlx-lm tokenizer wrapper of a model (cheap: no weights are read)."""
    from mlx_lm.utils import load_tokenizer as _load

    path = resolve_model(name_or_path)
    config = json.loads((path / "config.json").read_text())
    return _load(path, eos_token_ids=config.get("eos_token_id"))
