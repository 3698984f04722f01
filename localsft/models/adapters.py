"""Attach a trained mlx-lm adapter folder to a loaded model: the one place adapters go on."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from localsft.errors import UserError


def attach_adapter(model: nn.Module, adapter_dir: str | Path, target: str = "its base model") -> dict:
    """Put the adapter in `adapter_dir` on `model` (in place) with mlx-lm's own loader.

    Returns the adapter's `adapter_config.json`. `target` names the model in the message
    shown when the adapter's layers or shapes do not match it.
    """
    from mlx_lm.tuner.utils import load_adapters

    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.exists():
        raise UserError(f"{adapter_dir} has no adapter_config.json: not an mlx-lm adapter folder.")
    try:
        load_adapters(model, str(adapter_dir))
    except (ValueError, KeyError) as err:
        # mlx-lm lists every mismatched weight; the first few say what went wrong.
        lines = str(err).splitlines()
        detail = "\n".join(lines[:4] + ([f"  ... and {len(lines) - 4} more"] if len(lines) > 4 else []))
        raise UserError(f"The adapter in {adapter_dir} does not fit {target}: {detail}") from None
    model.eval()
    mx.eval(model.parameters())
    return json.loads(config_path.read_text())
