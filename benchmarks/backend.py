"""Backend figures: matmul GFLOP/s per precision, and generation speed vs `mlx_lm generate`.

Prints one JSON object. Both generators run in this one invocation on the same model
folder and prompt, greedy, same number of tokens. mlx_lm gets the stored model as it
is (4-bit, as a user running `mlx_lm generate` would), an fp32 copy, and the fp32 copy
with OpenBLAS preloaded (LD_PRELOAD), i.e. the same engine on the same math library.

    .venv/bin/python benchmarks/backend.py [--max-tokens 100]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import localsft  # noqa: F401  (fast BLAS before mlx)
from localsft.platform.backend import backend_name, matmul_gflops
from localsft.platform.blas import blas_in_use, find_openblas
from localsft.models import load_model, resolve_model

PROMPT = "Write a short paragraph about why people enjoy hiking in the mountains."


def mlx_lm_tps(model_dir: str, max_tokens: int, preload: str | None = None) -> float:
    """Decode tokens/s that the `mlx_lm generate` command reports for the same prompt."""
    cmd = [sys.executable, "-m", "mlx_lm", "generate", "--model", model_dir, "--prompt", PROMPT,
           "--max-tokens", str(max_tokens), "--temp", "0", "--ignore-chat-template"]
    env = dict(os.environ, LD_PRELOAD=preload) if preload else None
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return float(re.search(r"Generation: \d+ tokens, ([\d.]+) tokens-per-sec", out).group(1))


def ours_tps(loaded, max_tokens: int) -> float:
    from mlx_lm import stream_generate

    prompt = loaded.tokenizer.encode(PROMPT)
    last = None
    for last in stream_generate(loaded.model, loaded.tokenizer, prompt, max_tokens=max_tokens):
        pass
    return float(last.generation_tps)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-tokens", type=int, default=100)
    args = parser.parse_args()
    folder = resolve_model(None)
    loaded = load_model(None)
    ours_tps(loaded, 10)  # warm-up
    start = time.perf_counter()
    ours = ours_tps(loaded, args.max_tokens)
    ours_wall = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        from mlx_lm.utils import save_config, save_model

        save_model(tmp, loaded.model)
        save_config(dict(loaded.config), f"{tmp}/config.json")
        for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            shutil.copy(folder / name, tmp)
        mlx_fp32 = mlx_lm_tps(tmp, args.max_tokens)
        mlx_fp32_openblas = mlx_lm_tps(tmp, args.max_tokens, preload=find_openblas())
    mlx_stored = mlx_lm_tps(str(folder), min(args.max_tokens, 30))
    print(json.dumps({
        "backend": backend_name(),
        "blas": blas_in_use(),
        "matmul_gflops": {d: round(matmul_gflops(d), 1) for d in ("float32", "bfloat16", "float16", "q4")},
        "model": folder.name,
        "ours_precision": loaded.precision.dtype,
        "ours_decode_tok_s": round(ours, 1),
        "ours_wall_s": round(ours_wall, 2),
        "mlx_lm_generate_stored_4bit_tok_s": round(mlx_stored, 1),
        "mlx_lm_generate_fp32_copy_tok_s": round(mlx_fp32, 1),
        "speedup_vs_mlx_lm_stored": round(ours / mlx_stored, 2),
        "mlx_lm_generate_fp32_copy_openblas_tok_s": round(mlx_fp32_openblas, 1),
        "ratio_vs_mlx_lm_fp32_openblas": round(ours / mlx_fp32_openblas, 2),
        "max_tokens": args.max_tokens,
    }, indent=2))


if __name__ == "__main__":
    main()
