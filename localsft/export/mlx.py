"""`mlx` export: the fused model as an MLX folder that `mlx_lm.load` reads (optionally re-quantized)."""

from __future__ import annotations

from pathlib import Path

from localsft.export.layout import save_merged
from localsft.export.merge import Tuned, load_exported


def write(tuned: Tuned, out: Path, bits: int | None = None) -> None:
    save_merged(tuned, out, dict(tuned.base_config), bits)


def reload(tuned: Tuned, out: Path):
    """The export as `mlx_lm.load` runs it (see merge.load_exported)."""
    return load_exported(out)
