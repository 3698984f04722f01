"""`localsft eval RUN_DIR [--data FILE] [--json]`: base vs tuned on held-out data.

Writes RUN/eval.json and RUN/eval.md and prints a summary (or the JSON with --json).
"""

from __future__ import annotations

import json
import sys

from localsft.evaluation.evaluate import EvalProgress, EvalReport, evaluate_run
from localsft.inference.generate import SamplingSettings
from localsft.runs.folder import RunFolder


def _progress(event: EvalProgress) -> None:
    if event.done == 0:
        print(f"[{event.stage} ({event.side}): {event.total} to do]", file=sys.stderr)


def summary(report: EvalReport) -> str:
    """The verdict in plain words, then the technical scores in an aligned table."""
    from localsft.evaluation.verdict import details, verdict

    data = report.to_dict()
    rows = [("details", "base", "tuned"), *details(data)]
    width = max(len(row[0]) for row in rows)
    table = [f"  {name:<{width}}  {base:>8}  {tuned:>8}" for name, base, tuned in rows]
    return "\n".join(verdict(data).lines() + [""] + table)


def run(args) -> int:
    from localsft.runs.names import resolve_run

    args.run = resolve_run(args.run)
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
    parser.add_argument("run", help="the run: its name (see `localsft runs`) or folder")
    parser.add_argument("--data", default=None, help="JSONL file to evaluate on (default: the run's data/test.jsonl)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--max-tokens", type=int, default=256, help="longest answer generated per example")
    parser.add_argument("--no-probes", action="store_true", help="skip the general-knowledge forgetting check")
    parser.set_defaults(func=run)
