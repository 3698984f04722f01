"""Data doctor figures: rows/s and peak memory to check and prepare a large CSV, tokenization included.

Prints one JSON object. Each measurement runs in a fresh child process: `check` and
`prepare` on the large CSV, timed, with the process's peak resident memory (ru_maxrss,
mostly the imported libraries); then both again on a CSV a fifth the size and on the large
one with Python's allocation tracing on. The growth of the traced peak from the small file
to the large one, per extra row, is what each kept row costs (its normalized example and a
few numbers): the reading and tokenizing stream, so nothing else grows with the file.

    .venv/bin/python benchmarks/data.py [--rows 50000] [--model NAME]
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx)


def write_csv(path: Path, rows: int) -> None:
    """Marketing-style pairs, ~25 and ~40 words, a few quoted fields with commas and newlines."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", "completion"])
        for i in range(rows):
            prompt = (f"Write a product description for item {i}, a lightweight running shoe in colour {i % 17}, "
                      f"for customers who run {i % 9 + 1} times a week.")
            answer = (f"Meet model {i}: light, fast and yours.\nBuilt for {i % 9 + 1} runs a week, it keeps its "
                      f"cushioning mile after mile, in colour {i % 17}, with a grip that holds on wet roads.")
            writer.writerow([prompt, answer])


def _measure(task: str, path: str, out: str, model: str | None, traced: bool, queue) -> None:
    from localsft.data import check, prepare
    from localsft.models import load_tokenizer

    tokenizer = load_tokenizer(model)
    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    report = check(path, tokenizer=tokenizer) if task == "check" else prepare(path, out, tokenizer=tokenizer)
    seconds = time.perf_counter() - start
    queue.put({"seconds": seconds, "rows_kept": report.rows_kept,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "traced_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20 if traced else None,
               "tokens": report.stats["tokens"]["tokens_per_epoch"]})


def measure(task: str, path: Path, out: Path, model: str | None, traced: bool = False) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_measure, args=(task, str(path), str(out), model, traced, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--model", default=None, help="tokenizer to use (default: the default model)")
    args = parser.parse_args()
    small_rows = args.rows // 5
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small, large = tmp / "small.csv", tmp / "large.csv"
        write_csv(small, small_rows)
        write_csv(large, args.rows)
        results = {"rows": args.rows, "file_mb": round(large.stat().st_size / 2**20, 1)}
        for task in ("check", "prepare"):
            timed = measure(task, large, tmp / "out", args.model)
            few = measure(task, small, tmp / "out", args.model, traced=True)
            many = measure(task, large, tmp / "out", args.model, traced=True)
            per_row = (many["traced_peak_mb"] - few["traced_peak_mb"]) * 2**20 / (args.rows - small_rows)
            results[task] = {"rows_per_s": round(timed["rows_kept"] / timed["seconds"]),
                             "tokens_per_s": round(timed["tokens"] / timed["seconds"]),
                             "seconds": round(timed["seconds"], 2),
                             "peak_rss_mb": round(timed["peak_rss_mb"], 1),
                             f"traced_peak_mb_{small_rows}_rows": round(few["traced_peak_mb"], 1),
                             f"traced_peak_mb_{args.rows}_rows": round(many["traced_peak_mb"], 1),
                             "bytes_per_kept_row": round(per_row)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
