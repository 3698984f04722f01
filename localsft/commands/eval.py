"""`localsft eval RUN_DIR [--data FILE] [--json]`: base vs tuned on held-out data.

Writes RUN/eval.json and RUN/eval.md and prints a summary (or the JSON with --json).
"""

from __future__ import annotations

import json
import sys

from localsft.evaluation.evaluate import EvalProgress, evaluate_run
from localsft.evaluation.report import EvalReport
from localsft.inference.generate import SamplingSettings
from localsft.runs.folder import RunFolder


def _progress(event: EvalProgress) -> None:
    if event.done == 0:
        print(f"[{event.stage} ({event.side}): {event.total} to do]", file=sys.stderr)


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def summary(report: EvalReport) -> str:
    """A few lines for the terminal."""
    rows = [("validation loss", "loss", ".3f"), ("perplexity", "perplexity", ".2f"),
            ("exact match", "exact_match", ".0%"), ("chrF", "chrf", ".1f"),
            ("format adherence", "format_adherence", ".0%"), ("probe accuracy", "probe_accuracy", ".0%")]
    lines = [f"{'':18} {'base':>8} {'tuned':>8}"]
    for label, name, spec in rows:
        base, tuned = getattr(report.base, name), getattr(report.tuned, name)
        if base is not None or tuned is not None:
            lines.append(f"{label:18} {_fmt(base, spec):>8} {_fmt(tuned, spec):>8}")
    if report.retention is not None:
        lines.append(f"retention (tuned/base probe accuracy): {report.retention:.0%}")
    return "\n".join(lines)


def run(args) -> int:
    settings = SamplingSettings(max_tokens=args.max_tokens, temperature=0.0)
    report = evaluate_run(args.run, data=args.data, settings=settings, probes=not args.no_probes,
                          on_event=None if args.json else _progress)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(summary(report))
    print(f"\nreport: {RunFolder.open(args.run).eval_md}")
    return 0


def register(parser) -> None:
    parser.add_argument("run", help="run folder")
    parser.add_argument("--data", default=None, help="JSONL file to evaluate on (default: the run's data/test.jsonl)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--max-tokens", type=int, default=256, help="longest answer generated per example")
    parser.add_argument("--no-probes", action="store_true", help="skip the general-knowledge forgetting check")
    parser.set_defaults(func=run)
