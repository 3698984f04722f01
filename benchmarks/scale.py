"""Data-parallel scaling on this machine: trained tokens/s with 1 and with 2 processes.

Both runs are the same `localsft train` (default model, recipes/data/mixed_lengths.jsonl,
the same global batch, seed and steps); the 2-process run goes through `--hosts` with a
host file naming this machine twice, so it uses mlx.launch and the ring backend over
loopback, exactly as two Macs would over Thunderbolt or Ethernet. Prints one JSON object:

    cpu_cores               what the processes share here
    one_process / two_processes
        tokens_per_s        trained (non-padding) tokens per second of step time, after the
                            first 2 steps (compilation); both ranks' tokens counted
        wall_s              the whole command: start-up, model load, data prep, training
    speedup                 tokens/s with 2 processes / tokens/s with 1
    scaling_efficiency      speedup / 2 (1.0 = perfect)
    same_result             largest difference between the two runs' adapter weights
    load_average_1min       before and after: other work on the machine skews every figure

Two processes on one machine share its cores (and memory bandwidth), so on a 2-core
machine expect no gain or a loss: each process gets one core instead of two, and adds
its own start-up and the all_sum of every step. Scaling pays off across machines.

    .venv/bin/python benchmarks/scale.py [--steps 6] [--batch-tokens 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx)
import mlx.core as mx

from localsft.platform.backend import backend_name
from localsft.models.store import install_default_model
from localsft.runs.folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "recipes" / "data" / "mixed_lengths.jsonl"


def train_once(out: Path, settings: list[str], hosts: Path | None) -> dict:
    """Run `localsft train` (under mlx.launch when `hosts` is given); its speed from the event log."""
    command = [sys.executable, "-m", "localsft", "train", "--data", str(DATA), "--out", str(out), *settings]
    if hosts:
        command += ["--hosts", str(hosts)]
    start = time.perf_counter()
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")
    return {"wall_s": round(wall, 1), **_speed(RunFolder(out).events())}


def _speed(events: list[dict], warmup: int = 2) -> dict:
    steps = [e for e in events if e["type"] == "step"]
    first, last = steps[min(warmup, len(steps) - 2) - 1], steps[-1]
    tokens = last["trained_tokens"] - first["trained_tokens"]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    return {"steps": len(steps), "timed_steps": last["step"] - first["step"], "timed_tokens": tokens,
            "step_s": round(seconds / max(last["step"] - first["step"], 1), 2),
            "tokens_per_s": round(tokens / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-tokens", type=int, default=1024)
    args = parser.parse_args()

    install_default_model()
    load_before = os.getloadavg()[0]
    settings = [item for setting in (f"iters={args.steps}", f"batch_tokens={args.batch_tokens}",
                                     "max_seq_len=512", "valid_fraction=0", "test_fraction=0",
                                     "sample_prompts=0", f"checkpoint_every={args.steps}")
                for item in ("--set", setting)]
    with tempfile.TemporaryDirectory() as tmp:
        hosts = Path(tmp) / "hosts.json"
        hosts.write_text(json.dumps({"hosts": [{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}] * 2}))
        one = train_once(Path(tmp) / "one", settings, None)
        two = train_once(Path(tmp) / "two", settings, hosts)
        weights = [mx.load(str(RunFolder(Path(tmp) / name).adapters_dir("last") / "adapters.safetensors"))
                   for name in ("one", "two")]
        same = max(float(mx.max(mx.abs(weights[0][k] - weights[1][k])).item()) for k in weights[0])
    speedup = two["tokens_per_s"] / one["tokens_per_s"]
    cores = os.cpu_count()
    print(json.dumps({
        "cpu_cores": cores, "backend": backend_name(), "model": "SmolLM2-135M-Instruct (default)",
        "data": DATA.name, "global_batch_tokens": args.batch_tokens, "steps": args.steps,
        "one_process": one, "two_processes": two,
        "speedup": round(speedup, 2), "scaling_efficiency": round(speedup / 2, 2), "same_result": same,
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "note": (f"Both processes share this machine's {cores} CPU cores, so little or negative scaling is "
                 f"expected here: each process gets about half the cores, and every step adds an all_sum "
                 f"over loopback plus mlx.launch's output relay. Real gains need one process per machine."),
    }, indent=2))


if __name__ == "__main__":
    main()
