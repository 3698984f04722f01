"""`mlx` export: the fused model as an MLX folder that `mlx_lm.load` reads (optionally re-quantized)."""

from __future__ import annotations

from pathlib import Path

from localsft.export.layout import save_merged
from localsft.export.merge import Tuned


def write(tuned: Tuned, out: Path, bits: int | None = None) -> None:
    save_merged(tuned, out, dict(tuned.base_config), bits)


def reload(tuned: Tuned, out: Path):
    """The export as `mlx_lm.load` runs it: weights as written (fp16 stays fp16, 4-bit stays 4-bit).

    (Checking an fp32 copy reported 100% agreement for an fp16 export whose greedy answers
    differed from the tuned model's on 3 prompts in 8.)
    """
    import mlx_lm

    model, tokenizer = mlx_lm.load(str(out))
    model.eval()
    return model, tokenizer
