"""`peft` export: the LoRA adapter as a Hugging Face PEFT adapter (transformers + peft load it).

Mapping: mlx-lm computes `W x + scale * (x @ lora_a @ lora_b)` with
lora_a (in, r) and lora_b (r, out); PEFT computes `W x + (alpha / r) * B(A(x))` with
lora_A.weight (r, in) and lora_B.weight (out, r). So A = lora_a.T, B = lora_b.T and
lora_alpha = scale * r. Target modules and layer indices come from the weights themselves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlx.core as mx

from localsft.errors import UserError
from localsft.export.merge import Tuned, base_reference, cast_floats, copy_model

_PREFIX = "base_model.model."
_LAYER_KEY = re.compile(r"^model\.layers\.(\d+)\.(.+)\.lora_([ab])$")


def to_peft(weights: dict[str, mx.array]) -> tuple[dict[str, mx.array], list[str], list[int]]:
    """mlx-lm adapter tensors -> (PEFT tensors, target module names, adapted layer indices)."""
    out, modules, layers = {}, set(), set()
    for name, value in weights.items():
        match = _LAYER_KEY.match(name)
        if not match:
            raise UserError(f"The adapter has a tensor the PEFT export cannot map: {name} "
                            f"(only LoRA on linear layers inside the transformer blocks is supported).")
        layer, module, which = match.groups()
        layers.add(int(layer))
        modules.add(module)
        key = f"{_PREFIX}model.layers.{layer}.{module}.lora_{which.upper()}.weight"
        out[key] = value.T
    return out, sorted(modules), sorted(layers)


def from_peft(weights: dict[str, mx.array]) -> dict[str, mx.array]:
    """PEFT tensors -> mlx-lm adapter tensors (the inverse of `to_peft`)."""
    out = {}
    for key, value in weights.items():
        name = key.removeprefix(_PREFIX).removesuffix(".weight")
        module, which = name.rsplit(".lora_", 1)
        out[f"{module}.lora_{which.lower()}"] = value.T
    return out


def write(tuned: Tuned, out: Path, bits: int | None = None) -> None:
    if tuned.fine_tune_type != "lora":
        raise UserError(f"The PEFT export handles LoRA adapters; this run trained "
                        f"{tuned.fine_tune_type!r}. Export it as `hf` or `mlx` instead.")
    lora = tuned.adapter_config["lora_parameters"]
    weights = mx.load(str(tuned.adapter_dir / "adapters.safetensors"))
    tensors, modules, layers = to_peft(weights)
    dtype = getattr(mx, tuned.save_dtype)
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapter_model.safetensors"),
                        {k: v.astype(dtype) for k, v in tensors.items()}, metadata={"format": "pt"})
    rank = int(lora["rank"])
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_reference(tuned),
        "r": rank,
        "lora_alpha": float(lora["scale"]) * rank,
        "lora_dropout": float(lora.get("dropout", 0.0)),
        "target_modules": modules,
        "layers_to_transform": layers,
        "layers_pattern": "layers",
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "inference_mode": True,
    }
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))


def reload(tuned: Tuned, out: Path):
    """The base with the PEFT adapter mapped back to mlx-lm LoRA layers (checks the mapping)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    config = json.loads((out / "adapter_config.json").read_text())
    weights = from_peft(mx.load(str(out / "adapter_model.safetensors")))
    model = copy_model(tuned.base)
    first = min(config["layers_to_transform"])
    lora = {"rank": config["r"], "scale": config["lora_alpha"] / config["r"], "dropout": 0.0,
            "keys": config["target_modules"]}
    linear_to_lora_layers(model, len(model.layers) - first, lora)
    model.load_weights(list(weights.items()), strict=False)
    cast_floats(model, "float32")
    model.eval()
    return model, tuned.tokenizer
