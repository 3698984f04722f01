"""`localsft runs`: the training runs in the store, newest first."""

from __future__ import annotations


def run(args) -> int:
    from localsft.runs.status import list_runs

    runs = list_runs()
    if not runs:
        print("No runs yet. Start one with: localsft train --data FILE")
        return 0
    print(f"{'RUN':<34} {'MODEL':<24} {'STATUS':<10} {'STEP':>9} {'BEST VAL':>9}  STARTED")
    for r in runs:
        best = f"{r.best_val_loss:.4f}" if r.best_val_loss is not None else "-"
        print(f"{r.name:<34} {r.model:<24} {r.status:<10} {f'{r.step}/{r.steps}':>9} {best:>9}  {r.started}")
    return 0


def register(parser) -> None:
    parser.set_defaults(func=run)
