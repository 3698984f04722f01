"""Side by side vs one model: wall time, peak memory, and decode tokens/s next to `mlx_lm generate`.

Prints one JSON object, everything measured in this one invocation on the same model,
adapter and prompt, greedy, the same number of new tokens per answer (end-of-turn
tokens are ignored so every answer has exactly --max-tokens tokens):

    one_model_s         the tuned model alone (base + adapter, one batch row)
    side_by_side_s      base and tuned together (one batch of two rows, adapter masked per row)
    naive_two_calls_s   base alone, then tuned alone
    ratio               side_by_side_s / one_model_s (target: at most 1.3); cpu_ratio the same
                        in CPU seconds of this process (steadier on a shared machine)
    peak_mem_*_mb       mx.get_peak_memory() during each (weights included)
    ours_decode_tok_s   our single-model decode speed, next to `mlx_lm generate` (its own CLI,
                        fp32 copy of the same weights + the same adapter, OpenBLAS preloaded
                        as localsft does) and mlx-lm's stream_generate in this process

Each figure is the best of --repeats runs (the machine may be shared).
Without --run, the default model gets a random LoRA adapter (rank 8, last 16 layers).

    .venv/bin/python benchmarks/compare.py [--run RUN_DIR] [--max-tokens 64] [--repeats 3]
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
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx)
import mlx.core as mx
import yaml

from localsft.inference.switch import SwitchableModel, load_switchable
from localsft.platform.backend import backend_name
from localsft.inference.batch import decode_tokens
from localsft.platform.blas import blas_in_use, find_openblas
from localsft.inference.generate import SamplingSettings, chat_prompt
from localsft.models.store import install_default_model
from localsft.models.loading import apply_precision

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."
LORA = {"rank": 8, "scale": 20.0, "dropout": 0.0}


def random_adapter_run(folder: Path) -> Path:
    """A run folder on the default model with a random (non-zero) LoRA adapter."""
    import mlx_lm
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model_dir = install_default_model()
    model, _ = mlx_lm.load(str(model_dir), lazy=True)
    linear_to_lora_layers(model, 16, LORA)
    mx.random.seed(0)
    weights = {k: (mx.random.normal(v.shape) * 1e-3 if k.endswith("lora_b") else v)
               for k, v in tree_flatten(model.parameters()) if k.endswith(("lora_a", "lora_b"))}
    adapters = folder / "adapters" / "best"
    adapters.mkdir(parents=True)
    mx.save_safetensors(str(adapters / "adapters.safetensors"), weights)
    (adapters / "adapter_config.json").write_text(json.dumps(
        {"fine_tune_type": "lora", "num_layers": 16, "lora_parameters": LORA}))
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": model_dir.name}))
    return folder


def timed(switchable: SwitchableModel, prompt: list[int], adapter_on: list[bool], max_tokens: int) -> dict:
    """Answer with the given rows; wall seconds, decode tokens/s (after the first token), peak MB."""
    mx.reset_peak_memory()
    settings = SamplingSettings(max_tokens=max_tokens)
    start, cpu_start = time.perf_counter(), time.process_time()
    first = None
    for _ in decode_tokens(switchable.model, [prompt] * len(adapter_on), set(), settings,
                           switchable.switch, adapter_on):
        first = first or time.perf_counter()
    end = time.perf_counter()
    return {"s": end - start, "cpu_s": time.process_time() - cpu_start,
            "tok_s": (max_tokens - 1) / (end - first), "mb": mx.get_peak_memory() / 1e6}


def mlx_lm_cli_tok_s(switchable: SwitchableModel, max_tokens: int) -> float:
    """Decode tokens/s that `mlx_lm generate` reports on an fp32 copy of the weights + the same adapter."""
    from mlx_lm.utils import load as mlx_load
    from mlx_lm.utils import save_config, save_model

    loaded = switchable.loaded
    with tempfile.TemporaryDirectory() as tmp:
        base, _ = mlx_load(str(loaded.path), lazy=True)
        save_model(tmp, apply_precision(base, loaded.precision))
        save_config(dict(loaded.config), f"{tmp}/config.json")
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(loaded.path / name, tmp)
        cmd = [sys.executable, "-m", "mlx_lm", "generate", "--model", tmp, "--adapter-path",
               str(switchable.adapter_path), "--prompt", PROMPT, "--max-tokens", str(max_tokens), "--temp", "0"]
        env = dict(os.environ, LD_PRELOAD=find_openblas() or "")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return float(re.search(r"Generation: \d+ tokens, ([\d.]+) tokens-per-sec", out).group(1))


def mlx_lm_stream_tok_s(switchable: SwitchableModel, prompt: list[int], max_tokens: int) -> float:
    """mlx-lm's own generator on the same in-memory tuned model (adapter on for every row)."""
    from mlx_lm import stream_generate

    switchable.switch.set_rows([True])
    last = None
    for last in stream_generate(switchable.model, switchable.tokenizer, prompt, max_tokens=max_tokens):
        pass
    return float(last.generation_tps)


def measure(switchable: SwitchableModel, max_tokens: int, repeats: int) -> dict:
    prompt = chat_prompt(switchable.tokenizer, [{"role": "user", "content": PROMPT}])
    for rows in ([True], [False, True]):  # warm-up
        timed(switchable, prompt, rows, 8)
    one, both, naive, stream = [], [], [], []
    for _ in range(repeats):  # interleaved, so a busy moment hits all alike
        one.append(timed(switchable, prompt, [True], max_tokens))
        both.append(timed(switchable, prompt, [False, True], max_tokens))
        naive.append(timed(switchable, prompt, [False], max_tokens)["s"] + timed(switchable, prompt, [True], max_tokens)["s"])
        stream.append(mlx_lm_stream_tok_s(switchable, prompt, max_tokens))
    one_s, both_s = min(r["s"] for r in one), min(r["s"] for r in both)
    return {
        "one_model_s": round(one_s, 3),
        "side_by_side_s": round(both_s, 3),
        "naive_two_calls_s": round(min(naive), 3),
        "ratio": round(both_s / one_s, 3),
        # CPU seconds of this process: less sensitive than wall time when others share the machine
        "cpu_ratio": round(min(r["cpu_s"] for r in both) / min(r["cpu_s"] for r in one), 3),
        "peak_mem_one_mb": round(min(r["mb"] for r in one), 1),
        "peak_mem_side_by_side_mb": round(min(r["mb"] for r in both), 1),
        "ours_decode_tok_s": round(max(r["tok_s"] for r in one), 1),
        "mlx_lm_stream_generate_tok_s": round(max(stream), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default=None, help="a run folder (default: the default model + a random adapter)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else random_adapter_run(Path(tmp) / "run")
        switchable = load_switchable(run)
        figures = measure(switchable, args.max_tokens, args.repeats)
        cli = max(mlx_lm_cli_tok_s(switchable, args.max_tokens) for _ in range(args.repeats))
    figures.update({
        "mlx_lm_generate_tok_s": round(cli, 1),
        "ours_vs_mlx_lm_generate": round(figures["ours_decode_tok_s"] / cli, 2),
        "model": switchable.loaded.path.name,
        "precision": switchable.loaded.precision.dtype,
        "backend": backend_name(),
        "blas": blas_in_use(),
        "max_tokens": args.max_tokens,
        "repeats": args.repeats,
        "load_average_1min": round(os.getloadavg()[0], 1),  # > CPU count: the machine was shared
    })
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
