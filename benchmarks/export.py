"""Export speed and memory on the default model: seconds and peak memory for each format.

Prints one JSON object. Each format runs in its own process (so peak RSS is that
format's), exporting the run's adapter as `localsft export` does:

    load_s          loading the base, attaching the adapter, the reference logits of the check
    write_check_s   writing the format, loading it back and running the fuse check
    total_s         the whole export_run call
    cpu_s           CPU seconds the process used (user + system; less sensitive to a busy machine)
    peak_rss_mb     the process's peak resident memory (Python, torch-free)
    mlx_peak_mb     mx.get_peak_memory(): MLX arrays at their largest
    size_mb         the export folder on disk
    max_abs_diff, greedy_agreement   the fuse check's figures

`all` exports every format in one process (one load shared by all).
Without --run, the default model gets a random LoRA adapter (rank 8, last 16 layers).

    .venv/bin/python benchmarks/export.py [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx)
import mlx.core as mx

from localsft.platform.backend import backend_name
from localsft.platform.blas import blas_in_use
from localsft.export import FORMATS, export_run

CASES = [(fmt, None) for fmt in FORMATS] + [("mlx", 8), ("mlx", 4), ("gguf", 8), ("all", None)]


def measure(run: Path, fmt: str, bits: int | None, out: Path) -> dict:
    """Export once in this process; the figures listed in the module docstring."""
    marks = []
    start = time.perf_counter()
    try:
        results = export_run(run, fmt, out=out, quantize=bits, force=True,
                             on_progress=lambda msg: marks.append((time.perf_counter(), msg)))
    except Exception as err:  # report, keep benchmarking the other formats
        return {"error": str(err)}
    end = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    first_write = next(t for t, msg in marks if msg.startswith("writing"))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    figures = {"total_s": round(end - start, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
               "load_s": round(first_write - start, 2),
               "write_check_s": round(end - first_write, 2),
               "peak_rss_mb": round(usage.ru_maxrss / 1024),
               "mlx_peak_mb": round(mx.get_peak_memory() / 1e6), "size_mb": round(size / 1e6, 1)}
    if len(results) == 1:
        check = results[0].check
        figures.update(max_abs_diff=float(f"{check.max_abs_diff:.3g}"),
                       greedy_agreement=round(check.greedy_agreement, 3), passed=check.passed)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run folder (default: random adapter on the default model)")
    parser.add_argument("--one", nargs=2, metavar=("FORMAT", "BITS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # child process: one case
        fmt, bits = args.one[0], int(args.one[1]) or None
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(measure(args.run, fmt, bits, Path(tmp) / "out")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            sys.path.insert(0, str(Path(__file__).parent))
            from compare import random_adapter_run

            run = random_adapter_run(Path(tmp) / "run")
        report = {"backend": backend_name(), "blas": blas_in_use(), "run": str(args.run or "random adapter"),
                  "load_average": os.getloadavg()[0], "cpus": os.cpu_count(), "formats": {}}
        for fmt, bits in CASES:
            done = subprocess.run([sys.executable, __file__, "--run", str(run), "--one", fmt, str(bits or 0)],
                                  capture_output=True, text=True)
            lines = done.stdout.strip().splitlines()
            name = fmt if bits is None else f"{fmt}-q{bits}"
            report["formats"][name] = json.loads(lines[-1]) if lines else {"error": done.stderr[-500:]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
