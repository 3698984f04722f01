"""Batched fill vs one row at a time: rows/s and tokens/s for 64 mixed-length rows.

Prints one JSON object, both sides measured in this one invocation on the same loaded
weights and adapter (the default model with a random LoRA adapter unless --run), greedy,
up to --max-tokens per answer (answers end at end-of-turn, as in a real fill):

    ours            localsft's fill path: rows in batches of --batch-size, one copy of the
                    weights, mixed lengths left-padded (localsft.fill.runner.Answerer)
    one_at_a_time   mlx-lm's stream_generate, one row after the other, same model object
    speedup         ours rows/s over one_at_a_time rows/s (target: at least 3);
                    cpu_speedup the same in CPU seconds of this process
    same_answers    how many of the 64 answers are identical on both sides

    .venv/bin/python benchmarks/fill.py [--run RUN_DIR] [--max-tokens 64] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx)
import mlx.core as mx

from compare import random_adapter_run
from localsft.fill.runner import Answerer
from localsft.inference.generate import SamplingSettings, chat_prompt
from localsft.inference.targets import resolve_target
from localsft.platform.backend import backend_name
from localsft.platform.blas import blas_in_use

PRODUCTS = ["trail running shoe", "wool sock", "rain jacket", "espresso machine", "desk lamp", "yoga mat",
            "backpack", "water bottle"]
ASKS = ["Write a tagline for our {p}.",
        "Write a short product description for our {p}. It is light, durable and made in Portugal.",
        "Our customers love the {p} because it is comfortable, it lasts for years, and it comes in eight "
        "colours. Write two sentences for the shop page that say this in a warm, confident tone.",
        "Here are the notes from our product team about the new {p}: recycled materials, a lifetime "
        "warranty, free repairs, ships in a compostable box, designed with feedback from three hundred "
        "testers over two years, priced below the market leader. Write a product description of about "
        "sixty words for the web shop, in a friendly tone, without exaggerating."]


def inputs() -> list[list[dict]]:
    """64 chats of four very different lengths (about 10 to 90 words)."""
    return [[{"role": "user", "content": ASKS[i % 4].format(p=PRODUCTS[i // 8])}] for i in range(64)]


def timed(fn) -> tuple[object, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def ours(answerer: Answerer, chats, settings: SamplingSettings, batch_size: int) -> list[str]:
    out = []
    for start in range(0, len(chats), batch_size):
        out += [a[0] for a in answerer.answer(chats[start:start + batch_size], settings, with_base=False)]
    return out


def one_at_a_time(answerer: Answerer, chats, settings: SamplingSettings) -> tuple[list[str], int]:
    """mlx-lm's stream_generate row by row, on the same model object with the adapter on."""
    from mlx_lm import stream_generate

    loaded = answerer.bank.loaded
    answerer.bank.switch.set_adapters([answerer.slot])
    answers, tokens = [], 0
    for chat in chats:
        text, last = "", None
        for last in stream_generate(loaded.model, loaded.tokenizer, chat_prompt(loaded.tokenizer, chat),
                                    max_tokens=settings.max_tokens):
            text += last.text
        answers.append(text)
        tokens += last.generation_tokens
    return answers, tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default=None, help="a run folder (default: the default model + a random adapter)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    settings = SamplingSettings(max_tokens=args.max_tokens)
    chats = inputs()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else random_adapter_run(Path(tmp) / "run")
        answerer = Answerer(resolve_target(str(run)))
        ours(answerer, chats[:4], SamplingSettings(max_tokens=4), 4)  # warm-up
        mx.reset_peak_memory()
        batched, ours_s, ours_cpu = timed(lambda: ours(answerer, chats, settings, args.batch_size))
        print(f"batched: {ours_s:.1f} s", file=sys.stderr)
        (single, tokens), single_s, single_cpu = timed(lambda: one_at_a_time(answerer, chats, settings))
        print(f"one at a time: {single_s:.1f} s", file=sys.stderr)
    same = sum(a.strip() == b.strip() for a, b in zip(batched, single))
    figures = {
        "rows": len(chats),
        "ours_s": round(ours_s, 2), "ours_cpu_s": round(ours_cpu, 2),
        "ours_rows_s": round(len(chats) / ours_s, 2), "ours_tok_s": round(tokens / ours_s, 1),
        "one_at_a_time_s": round(single_s, 2), "one_at_a_time_cpu_s": round(single_cpu, 2),
        "one_at_a_time_rows_s": round(len(chats) / single_s, 2), "one_at_a_time_tok_s": round(tokens / single_s, 1),
        "speedup": round(single_s / ours_s, 2), "cpu_speedup": round(single_cpu / ours_cpu, 2),
        "answer_tokens": tokens, "same_answers": same,
        "peak_mem_mb": round(mx.get_peak_memory() / 1e6, 1),
        "model": answerer.bank.loaded.path.name, "precision": answerer.bank.loaded.precision.dtype,
        "backend": backend_name(), "blas": blas_in_use(), "batch_size": args.batch_size,
        "max_tokens": args.max_tokens, "load_average_1min": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
