"""`localsft fill RUN --data FILE`: answer every row of a spreadsheet with a run's tuned model.

RUN is a run (folder or name) or a base model name. The filled file (same kind as the
input; every original column, then `answer`, `base answer` with --with-base, `format ok`
when the run has a format check) is rewritten after every batch, so Ctrl-C loses nothing:
`--resume` continues at the first missing row.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from localsft.fill import FillOptions, FillProgress, fill_file
from localsft.inference.generate import SamplingSettings


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class _Progress:
    """A one-line bar on a terminal (a line per batch otherwise); optionally a JSON file for the app."""

    def __init__(self, progress_file: str | None, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.progress_file = Path(progress_file) if progress_file else None

    def __call__(self, p: FillProgress) -> None:
        width = 24
        filled = int(width * p.done / max(p.total, 1))
        text = (f"{p.done}/{p.total} rows [{'=' * filled}{' ' * (width - filled)}] "
                f"{p.rows_per_s:.2f} rows/s, {_duration(p.seconds_left)} left")
        self.stream.write(("\r" + text + "\x1b[K") if self.tty else text + "\n")
        self.stream.flush()
        if self.progress_file:
            from localsft.runs.folder import atomic_write_text

            atomic_write_text(self.progress_file, json.dumps({
                "done": p.done, "total": p.total, "rows_per_s": p.rows_per_s,
                "seconds_left": p.seconds_left, "out": str(p.out)}))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args) -> int:
    settings = SamplingSettings(max_tokens=args.max_tokens, temperature=args.temperature,
                                top_p=args.top_p, seed=args.seed)
    options = FillOptions(input_column=args.input_col, out=args.out, with_base=args.with_base,
                          settings=settings, resume=args.resume, sheet=args.sheet,
                          batch_size=args.batch_size, limit=args.limit)
    progress = _Progress(args.progress_file)
    signal.signal(signal.SIGTERM, _interrupt)  # the app's Stop: end like Ctrl-C
    try:
        out = fill_file(args.run, args.data, options, on_progress=progress)
    except KeyboardInterrupt:
        print("\nstopped: every finished row is in the file; continue with --resume.", file=sys.stderr)
        return 130
    if progress.tty:
        print(file=sys.stderr)
    print(f"filled: {out}")
    return 0


def register(parser) -> None:
    parser.add_argument("run", help="run folder or name, or a base model name")
    parser.add_argument("--data", required=True, help="the inputs: .xlsx, .csv, .tsv, .jsonl or .json")
    parser.add_argument("--input-col", default=None, help="the column holding the inputs (default: found by name)")
    parser.add_argument("--out", default=None, help="the filled file (default: DATA.filled.<same kind>)")
    parser.add_argument("--with-base", action="store_true", help="add the base model's answer next to the tuned one")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0 = greedy)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the top tokens up to this probability")
    parser.add_argument("--max-tokens", type=int, default=256, help="longest answer, in tokens")
    parser.add_argument("--seed", type=int, default=None, help="seed for sampling (reproducible answers)")
    parser.add_argument("--resume", action="store_true", help="continue an earlier fill of the same file")
    parser.add_argument("--sheet", default=None, help="the Excel sheet to read (default: the first)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows decoded together")
    parser.add_argument("--limit", type=int, default=None, help="answer only the first N rows (a preview)")
    parser.add_argument("--progress-file", default=None, help=argparse.SUPPRESS)  # for the app
    parser.set_defaults(func=run)

