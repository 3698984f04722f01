"""Why q8_0 GGUF answers drift: greedy answers in real llama.cpp with groups of tensors kept in f16.

The default model with a random LoRA (rank 8 on 8 blocks, as benchmarks/export_consumers.py uses),
fused and written as GGUF: f16, q8_0 as localsft (and llama.cpp's converter) writes it, and q8_0
with one group of tensors (token_embd, attention, feed-forward) kept f16; plus a control: the base
alone (no adapter) in q8_0 against the base in MLX. For 8 chat prompts x 16 greedy tokens, counts
the answers equal to MLX fp32's and the first differing token per prompt. Prints JSON lines; CPU
seconds (llama.cpp's node processes included) and the load average, as wall times here are noise.

    .venv/bin/python benchmarks/gguf_q8_tensors.py [--out FOLDER]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from export_consumers import PROMPTS, _greedy_mlx, _trim  # noqa: E402

TOKENS = 16
GROUPS = {"token_embd": ("token_embd",), "attention": (".attn_",), "feed-forward": (".ffn_",)}


def _keeping(parts: tuple[str, ...]):
    """A quantizer for write_file: q8_0, except tensors whose name holds one of `parts` (kept f16)."""
    import gguf
    import numpy as np

    def quantize(name, array, qtype):
        if any(part in name for part in parts):
            return array.astype(np.float16), gguf.GGMLQuantizationType.F16
        return gguf.quants.quantize(array, qtype), qtype

    return quantize


def _compare(path: Path, prompts, reference, stops) -> dict:
    from support.llama_cpp import run_llama_cpp

    done = run_llama_cpp(path, prompts=[{"tokens": p, "generate": TOKENS} for p in prompts], timeout=1800)
    answers = [_trim(p["greedy"], stops) for p in done["prompts"]]
    first = [next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None) if got != want else None
             for got, want in zip(answers, reference)]
    return {"same": f"{sum(a == r for a, r in zip(answers, reference))}/{len(prompts)}",
            "first_differing_token": first, "MB": round(path.stat().st_size / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="a folder for the run and the files (default: a temporary one)")
    args = parser.parse_args()
    from support.runs import make_export_run

    from localsft.export.gguf import write_file
    from localsft.export.merge import fuse, load_tuned
    from localsft.inference.generate import chat_prompt
    from localsft.models.store import resolve_model
    from localsft.runs.folder import RunFolder

    start_cpu, start = time.process_time(), time.time()
    out = Path(args.out or tempfile.mkdtemp(prefix="gguf-q8-"))
    run = out / "run"
    if not run.exists():
        make_export_run(run, resolve_model(None), num_layers=8, rank=8, scale=20.0, strength=0.02)
    tuned = load_tuned(RunFolder.open(run))
    prompts = [chat_prompt(tuned.tokenizer, [{"role": "user", "content": p}]) for p in PROMPTS]
    stops = set(tuned.tokenizer.eos_token_ids)
    tuned_answers = _greedy_mlx(tuned.model, tuned.tokenizer, prompts, TOKENS)
    base_answers = _greedy_mlx(tuned.base, tuned.tokenizer, prompts, TOKENS)
    fused = fuse(tuned)
    cases = [("f16", fused, "f16", None, tuned_answers), ("q8_0", fused, "q8_0", _keeping(()), tuned_answers)]
    cases += [(f"q8_0, {group} f16", fused, "q8_0", _keeping(parts), tuned_answers)
              for group, parts in GROUPS.items()]
    cases += [("base alone, q8_0", dataclasses.replace(fused, model=tuned.base), "q8_0", _keeping(()), base_answers)]
    for label, model, kind, quantize, reference in cases:
        path = out / f"{label.replace(', ', '-').replace(' ', '_')}.gguf"
        if not path.exists():
            write_file(model, path, kind, quantize=quantize)
        print(json.dumps({label: _compare(path, prompts, reference, stops)}), flush=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"cpu_s": round(time.process_time() - start_cpu + children.ru_utime + children.ru_stime, 1),
                      "wall_s": round(time.time() - start, 1), "load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
