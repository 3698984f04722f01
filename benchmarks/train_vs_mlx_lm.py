"""Our trainer vs `mlx_lm lora`, side by side on the same machine, model, data and LoRA settings.

    .venv/bin/python benchmarks/train_vs_mlx_lm.py                  # fp32 (fast BLAS), 1 epoch
    .venv/bin/python benchmarks/train_vs_mlx_lm.py --precision q4 --examples 8

Each trainer runs as its own child process (wall time from start to adapters saved,
peak resident memory from the kernel's accounting of that child). mlx_lm gets the same
OpenBLAS through LD_PRELOAD, the same cosine schedule with warmup, rank, scale, layers,
learning rate and number of epochs (its iterations = epochs x examples / batch size).
Both trainers validate on the same 4 examples while training; afterwards every adapter is
scored by one evaluator (our masked loss on a 10% held-out split, fp32 copy of the base),
so the losses compare like for like. Prints one JSON object.

4-bit on MLX's CPU backend runs scalar (see benchmarks/backend.py): use few examples there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx)
import mlx.core as mx
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "recipes" / "data" / "mixed_lengths.jsonl"


def split_data(out: Path, examples: int | None, seed: int = 0) -> int:
    """train.jsonl, a 4-example valid.jsonl (the trainers' own validation, kept cheap and equal
    for both) and heldout.jsonl (10%, seeded, scored after training) from the mixed-length set."""
    rows = [line for line in DATA.read_text().splitlines() if line.strip()]
    random.Random(seed).shuffle(rows)
    n_held = max(1, len(rows) // 10)
    held, train = rows[:n_held], rows[n_held:]
    if examples:
        train = train[:examples]
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("valid", held[:4]), ("heldout", held)):
        (out / f"{name}.jsonl").write_text("\n".join(part) + "\n")
    return len(train)


def fp32_copy(source: Path, out: Path) -> Path:
    """A dequantized fp32 copy of a model folder (what mlx_lm needs to train in fp32)."""
    from mlx_lm.utils import save_model

    from localsft.models.loading import load_model

    if (out / "config.json").exists():
        return out
    loaded = load_model(str(source), precision="float32")
    out.mkdir(parents=True)
    save_model(out, loaded.model)
    (out / "config.json").write_text(json.dumps(loaded.config, indent=2))
    for f in source.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copyfile(f, out / f.name)
    return out


def run_child(cmd: list[str], env: dict, log: Path) -> dict:
    """Run one trainer; wall and CPU seconds and peak RSS of that child (MB).

    CPU seconds are reported too: on a shared machine wall time also measures the neighbours."""
    start = time.perf_counter()
    with open(log, "w") as fh:
        child = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed; see {log}:\n{log.read_text()[-2000:]}")
    return {"s": round(seconds, 1), "cpu_s": round(cpu, 1), "peak_mem_mb": round(usage.ru_maxrss / 1024, 1)}


def ours(model: Path, data: Path, out: Path, args, batching: list[str], precision: str) -> dict:
    settings = {"epochs": args.epochs, "lora_rank": args.rank, "lora_alpha": args.rank * args.scale,
                "lora_layers": args.layers, "learning_rate": args.lr, "warmup_ratio": 0.05,
                "lr_schedule": "cosine", "max_seq_len": args.max_seq_len, "eval_every": 10**6,
                "checkpoint_every": 10**6, "early_stopping_patience": 0, "sample_prompts": 0,
                "precision": precision, "seed": 0, "batch_tokens": args.batch_tokens,
                "replay": 0}  # the same rows as mlx_lm: a speed comparison
    sets = [x for k, v in settings.items() for x in ("--set", f"{k}={v}")]
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "localsft", "train", "--data", str(data), "--model", str(model),
           "--out", str(out), *sets, *batching]
    result = run_child(cmd, dict(os.environ), out.with_suffix(".log"))
    steps = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    result["steps"] = max((e["step"] for e in steps if e["type"] == "step"), default=0)
    result["adapter"] = str(out / "adapters" / "last")
    return result


def mlx_lm(model: Path, data: Path, out: Path, args, n_train: int) -> dict:
    iters = math.ceil(args.epochs * n_train / args.batch_size)
    warmup = int(0.05 * iters)
    config = {
        "model": str(model), "train": True, "data": str(data), "fine_tune_type": "lora", "seed": 0,
        "num_layers": args.layers, "batch_size": args.batch_size, "iters": iters, "val_batches": -1,
        "learning_rate": args.lr, "steps_per_report": 10, "steps_per_eval": 10**6, "save_every": 10**6,
        "adapter_path": str(out), "max_seq_length": args.max_seq_len, "mask_prompt": True,
        "lora_parameters": {"rank": args.rank, "scale": float(args.scale), "dropout": 0.0},
        "lr_schedule": {"name": "cosine_decay", "arguments": [args.lr, max(1, iters - warmup), 0.0],
                        "warmup": warmup, "warmup_init": 0.0},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ)
    if localsft.platform.blas.find_openblas() and "OpenBLAS" in localsft.platform.blas.blas_in_use():
        env["LD_PRELOAD"] = localsft.platform.blas.find_openblas()  # the same fast BLAS we get
    result = run_child([sys.executable, "-m", "mlx_lm", "lora", "-c", str(out / "config.yaml")], env,
                       out / "train.log")
    result["steps"] = iters
    result["adapter"] = str(out)
    found = re.findall(r"Peak mem ([\d.]+) GB", (out / "train.log").read_text())
    result["mlx_peak_mb"] = round(float(found[-1]) * 1000, 1) if found else None
    return result


def val_loss(model_fp32: Path, adapter: str, data: Path, max_seq_len: int) -> float:
    """Masked validation loss of base + adapter, computed the same way for both trainers."""
    from localsft.models import attach_adapter, load_model
    from localsft.train.batching import eval_batches, read_jsonl, tokenize_examples
    from localsft.train.config import TrainConfig
    from localsft.train.loss import loss_sum

    loaded = load_model(str(model_fp32), precision="float32")
    attach_adapter(loaded.model, adapter)
    examples = tokenize_examples(read_jsonl(data / "heldout.jsonl"), loaded.tokenizer, max_seq_len)
    total = count = 0.0
    for b in eval_batches(examples, TrainConfig(max_seq_len=max_seq_len)):  # packed: same loss as one by one
        s, n = loss_sum(loaded.model, mx.array(b.inputs), mx.array(b.targets), mx.array(b.segments),
                        mx.array(b.loss_index), mx.array(b.loss_weight))
        total, count = total + s.item(), count + n.item()
    return round(total / count, 4)


def bench(precision: str, args, work: Path) -> dict:
    from localsft.models import resolve_model

    stored = resolve_model(None)
    fp32 = fp32_copy(stored, work / "fp32-model")
    model = fp32 if precision == "fp32" else stored
    data = work / f"data-{precision}"
    n_train = split_data(data, args.examples)
    policy = "float32" if precision == "fp32" else "quantized"
    runs = {
        "ours": ours(model, data, work / f"ours-{precision}", args, [], policy),
        "ours_same_batching": ours(model, data, work / f"ours-same-{precision}", args,
                                   ["--set", f"batch_size={args.batch_size}", "--set", "packing=false"], policy),
        "mlx_lm": mlx_lm(model, data, work / f"mlx-{precision}", args, n_train),
    }
    for r in runs.values():
        r["val_loss"] = val_loss(fp32, r["adapter"], data, args.max_seq_len)
    o, s, m = runs["ours"], runs["ours_same_batching"], runs["mlx_lm"]
    return {
        "precision": precision, "train_examples": n_train, "epochs": args.epochs,
        "ours_s": o["s"], "mlx_lm_s": m["s"], "speedup": round(m["s"] / o["s"], 2),
        "ours_val_loss": o["val_loss"], "mlx_lm_val_loss": m["val_loss"],
        "ours_peak_mem_mb": o["peak_mem_mb"], "mlx_lm_peak_mem_mb": m["peak_mem_mb"],
        "same_batching_ours_s": s["s"], "same_batching_speedup": round(m["s"] / s["s"], 2),
        "same_batching_ours_val_loss": s["val_loss"], "same_batching_ours_peak_mem_mb": s["peak_mem_mb"],
        "ours_steps": o["steps"], "same_batching_ours_steps": s["steps"], "mlx_lm_steps": m["steps"],
        "mlx_lm_mlx_peak_mb": m["mlx_peak_mb"],
        "cpu_s": {k: r["cpu_s"] for k, r in runs.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=["fp32", "q4", "both"], default="fp32")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--examples", type=int, default=None, help="use only this many training examples")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--scale", type=float, default=2.0, help="LoRA scale (alpha / rank)")
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=4, help="mlx_lm's batch size (and ours at same batching)")
    parser.add_argument("--batch-tokens", type=int, default=512,
                        help="our packed token budget per step (512 ~ the real tokens of mlx_lm's 4 examples here)")
    parser.add_argument("--max-seq-len", type=int, default=512, help="longer than every example of the set")
    parser.add_argument("--work", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="train-bench-"))
    precisions = ["fp32", "q4"] if args.precision == "both" else [args.precision]
    results = [bench(p, args, work) for p in precisions]
    print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
