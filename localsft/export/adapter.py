"""`adapter` export: the mlx-lm adapter folder as trained (adapters.safetensors + adapter_config.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from localsft.export.merge import Tuned, attach_fp32, base_reference, copy_model


def write(tuned: Tuned, out: Path, bits: int | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(tuned.adapter_dir / "adapters.safetensors", out / "adapters.safetensors")
    config = dict(tuned.adapter_config)
    config["model"] = base_reference(tuned)
    (out / "adapter_config.json").write_text(json.dumps(config, indent=4))


def reload(tuned: Tuned, out: Path):
    """The base with the exported adapter attached, as mlx-lm would load it."""
    model = copy_model(tuned.base)
    attach_fp32(model, out)
    return model, tuned.tokenizer
