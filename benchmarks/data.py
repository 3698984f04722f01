"""Data doctor figures: rows/s and peak memory to check and prepare a large CSV, tokenization included.

Prints one JSON object. Each measurement runs in a fresh child process: `check` and
`prepare` on the large CSV, timed, with the process's peak resident memory (ru_maxrss,
mostly the imported libraries); then both again on a CSV a fifth the size and on the large
one with Python's allocation tracing on. The growth of the traced peak from the small file
to the large one, per extra row, is what each kept row costs (its normalized example and a
few numbers): the reading and tokenizing stream, so nothing else grows with the file.

    .venv/bin/python benchmarks/data.py [--rows 50000] [--model NAME]

With --bombs, peak memory to check crafted files instead (issue 13): a 1 MB .xlsx whose one
shared string unzips to 1 GiB and is used by 2,000 cells, and 20 MB of JSON made of tiny
rows (as an array, and wrapped in {"data": [...]}). Each is checked in a fresh child (no
tokenizer: the reading is what a bomb attacks); its peak resident memory minus that of a
child that only imported localsft is the file's cost. `--code DIR` reads with another
checkout of localsft (e.g. the code before the fix) for a before/after pair. The same files
also go through `check_isolated` (what the studio runs), whose figures are the app
process's own growth.

    .venv/bin/python benchmarks/data.py --bombs [--code DIR]
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


def _bomb_child(path: str, code: str | None, queue) -> None:
    import os
    import sys

    if code:  # read with that checkout: forget the localsft this script imported
        sys.path.insert(0, code)
        for name in [m for m in sys.modules if m == "localsft" or m.startswith("localsft.")]:
            del sys.modules[name]
    from localsft.data import check

    before = _peak_rss_mb(os.getpid())  # not ru_maxrss: Linux carries it over from the parent through exec
    start, cpu = time.perf_counter(), time.process_time()
    try:
        report = check(path)
        result = f"read: {report.rows_kept} rows kept, trainable {report.trainable}"
    except Exception as err:  # the figures matter here, whatever the outcome
        result = f"{type(err).__name__}: {str(err).replace(os.path.dirname(path) + '/', '')[:160]}"
    queue.put({"result": result, "read_with": str(Path(sys.modules["localsft"].__file__).parents[1]),
               "import_rss_mb": before, "seconds": round(time.perf_counter() - start, 1),
               "cpu_seconds": round(time.process_time() - cpu, 1),
               "peak_rss_mb": _peak_rss_mb(os.getpid())})


def _isolated(path: Path) -> dict:
    from localsft.data.isolated import check_isolated
    from localsft.errors import UserError

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu = time.perf_counter(), time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        result = f"read: {check_isolated(path).rows_kept} rows kept"
    except UserError as err:
        result = str(err).replace(str(path.parent) + "/", "")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"result": result, "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds_app": round(time.process_time() - cpu, 1),
            "cpu_seconds_child": round(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime, 1),
            "app_peak_rss_growth_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss)}


def _peak_rss_mb(pid: int) -> int:
    """The high-water mark of a live process's resident memory (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return -1


def _in_child(ctx, path: Path, code: str | None, limit_s: float) -> dict:
    """_bomb_child's figures; a child still reading after `limit_s` is stopped and its peak so far given."""
    import queue as queues

    queue = ctx.Queue()
    child = ctx.Process(target=_bomb_child, args=(str(path), code, queue))
    start = time.perf_counter()
    child.start()
    try:
        figures = queue.get(timeout=limit_s)
    except queues.Empty:
        figures = {"result": f"still reading after {limit_s:.0f} s: stopped", "peak_rss_mb": _peak_rss_mb(child.pid),
                   "seconds": round(time.perf_counter() - start)}
        child.kill()
    child.join()
    return figures


def bombs(code: str | None, limit_s: float) -> dict:
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "fixtures" / "data"))
    from make_hardening import json_bomb, shared_string_bomb

    results = {"code": code or "this checkout", "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        files = {"xlsx_1gib_shared_string": Path(tmp) / "bomb.xlsx", "json_20mb_tiny_rows": Path(tmp) / "rows.json",
                 "json_20mb_wrapped": Path(tmp) / "wrapped.json"}
        shared_string_bomb(files["xlsx_1gib_shared_string"])
        json_bomb(files["json_20mb_tiny_rows"])
        json_bomb(files["json_20mb_wrapped"], wrapped=True)
        ctx = mp.get_context("spawn")
        for name, path in files.items():
            figures = _in_child(ctx, path, code, limit_s)
            figures["file_mb"] = round(path.stat().st_size / 2**20, 2)
            results[name] = {"check": figures, "check_isolated": None if code else _isolated(path)}
    results["load_average_after"] = os.getloadavg()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--model", default=None, help="tokenizer to use (default: the default model)")
    parser.add_argument("--bombs", action="store_true", help="peak memory on crafted files instead")
    parser.add_argument("--code", default=None, help="with --bombs: a localsft checkout to read with")
    parser.add_argument("--limit-s", type=float, default=300, help="with --bombs: stop a check after this long")
    args = parser.parse_args()
    if args.bombs:
        print(json.dumps(bombs(args.code, args.limit_s), indent=2))
        return
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
