"""`localsft runs`: the training runs in the store, newest first (a damaged run folder is skipped with a warning)."""

from __future__ import annotations

import sys


def run(args) -> int:
    from localsft.runs.status import list_runs

    runs = list_runs(warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    if not runs:
        print("No runs yet. Start one with: localsft train --data FILE")
        return 0
    status_width = max(10, *(len(r.label) for r in runs))
    print(f"{'RUN':<34} {'MODEL':<24} {'STATUS':<{status_width}} {'STEP':>9} {'BEST VAL':>9}  STARTED")
    for r in runs:
        best = f"{r.best_val_loss:.4f}" if r.best_val_loss is not None else "-"
        print(f"{r.name:<34} {r.model:<24} {r.label:<{status_width}} {f'{r.step}/{r.steps}':>9} {best:>9}  "
              f"{r.started}")
    return 0


def register(parser) -> None:
    parser.set_defaults(func=run)
