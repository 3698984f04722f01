"""Exports as their users run them: greedy answers of each export against the adapter on the base.

For 8 chat prompts, the reference is the run's adapter on its base in MLX (fp32, as localsft
runs it on CPU). Each export is then run by its consumer, in the dtype that consumer loads:

    mlx <dtype>         `mlx_lm.load` of the mlx export (weights as stored: fp16 stays fp16)
    gguf <type> (llama.cpp)   real llama.cpp (node-llama-cpp, see tests/support) from the same prompt tokens

and we count the prompts whose whole greedy answer (up to --tokens tokens) equals the reference's,
next to the export's own fuse check figures. Prints one JSON object; CPU seconds and load average
are reported because wall times on a shared machine are noise.

    .venv/bin/python benchmarks/export_consumers.py [--run RUN_DIR] [--tokens 24]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

PROMPTS = ["What is the capital of France?", "Write a tagline for a bakery.", "Give me three colours.",
           "How do I boil an egg?", "Name a famous painter.", "Say hello in Spanish.",
           "What is two plus two?", "Describe the sea in one sentence."]


def _greedy_mlx(model, tokenizer, prompts: list[list[int]], tokens: int) -> list[list[int]]:
    from mlx_lm.generate import generate_step

    answers = []
    for ids in prompts:
        import mlx.core as mx

        out = []
        for token, _ in generate_step(mx.array(ids), model, max_tokens=tokens):
            if token in tokenizer.eos_token_ids:
                break
            out.append(int(token))
        answers.append(out)
    return answers


def _trim(answer: list[int], stops: set[int]) -> list[int]:
    for i, token in enumerate(answer):
        if token in stops:
            return answer[:i]
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run folder (default: a random LoRA on the default model)")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--reuse", help="a folder of an earlier run of this script: reuse its run and exports")
    args = parser.parse_args()
    import mlx_lm

    from support.llama_cpp import missing_reason, run_llama_cpp

    from localsft.export import export_run
    from localsft.export.merge import _weights_dtype, load_tuned
    from localsft.inference.generate import chat_prompt
    from localsft.runs.folder import RunFolder

    start_cpu, start = time.process_time(), time.time()
    tmp = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="export-consumers-"))
    run = args.run or (tmp / "run" if args.reuse else None)
    if run is None:
        from support.runs import make_export_run as make_run

        from localsft.models.store import resolve_model

        run = make_run(tmp / "run", resolve_model(None), num_layers=8, rank=8, scale=20.0, strength=0.02)
    tuned = load_tuned(RunFolder.open(run))
    prompts = [chat_prompt(tuned.tokenizer, [{"role": "user", "content": p}]) for p in PROMPTS]
    reference = _greedy_mlx(tuned.model, tuned.tokenizer, prompts, args.tokens)
    stops = set(tuned.tokenizer.eos_token_ids)
    del tuned
    report = {"prompts": len(PROMPTS), "tokens": args.tokens, "cases": {}}
    cases = [("mlx", None, None), ("mlx", None, "float32"), ("gguf", None, None), ("gguf", 8, None),
             ("gguf", None, "float32")]
    for fmt, bits, dtype in cases:
        out = tmp / f"{fmt}-{bits}-{dtype}"
        if not (out / "localsft-export.json").exists():
            export_run(run, fmt, out=out, quantize=bits, dtype=dtype, force=True)
        check = json.loads((out / "localsft-export.json").read_text())
        if fmt == "mlx":
            model, tokenizer = mlx_lm.load(str(out))
            name = f"mlx {_weights_dtype(model)} (mlx_lm.load)"
            answers = _greedy_mlx(model, tokenizer, prompts, args.tokens)
            del model
        elif missing_reason():
            report["cases"][f"gguf {bits} {dtype}"] = {"skipped": missing_reason()}
            continue
        else:
            gguf_file = next(out.glob("*.gguf"))
            name = f"gguf {gguf_file.stem.removeprefix('model-')} (llama.cpp)"
            done = run_llama_cpp(gguf_file, prompts=[{"tokens": p, "generate": args.tokens} for p in prompts])
            answers = [_trim(p["greedy"], stops) for p in done["prompts"]]
        same = sum(a == r for a, r in zip(answers, reference))
        report["cases"][name] = {"same_answers": f"{same}/{len(PROMPTS)}", "check_greedy_agreement":
                                 round(check["greedy_agreement"], 4), "check_max_abs_diff": check["max_abs_diff"],
                                 "check_kept_effect": round(check["kept_effect"], 4)}
        print(json.dumps({name: report["cases"][name]}), file=sys.stderr, flush=True)  # partial results
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # llama.cpp runs in node child processes
    report["cpu_s"] = round(time.process_time() - start_cpu + children.ru_utime + children.ru_stime, 1)
    report["wall_s"] = round(time.time() - start, 1)
    report["load_average"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
