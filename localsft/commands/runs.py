"""`localsft runs`: the training runs in the store, newest first; `--name RUN NAME` gives one a friendly name.

Every command that takes a run accepts either name this table prints (RUN or NAME).
"""

from __future__ import annotations


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as lines with every column as wide as its widest cell (the last one left ragged)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def run(args) -> int:
    from localsft.runs.names import friendly_name, resolve_run, set_friendly_name
    from localsft.runs.status import list_runs

    if args.name:
        folder = resolve_run(args.name[0])
        kept = set_friendly_name(folder, args.name[1])
        print(f"{folder.name} is now called {kept!r}." if kept else f"{folder.name} has no friendly name now.")
        return 0
    runs = list_runs()
    if not runs:
        print("No runs yet. Start one with: localsft train --data FILE")
        return 0
    rows = [("RUN", "NAME", "MODEL", "STATUS", "STEP", "BEST VAL", "STARTED")]
    for r in runs:
        best = f"{r.best_val_loss:.4f}" if r.best_val_loss is not None else "-"
        rows.append((r.name, friendly_name(r.path) or "-", r.model, r.status, f"{r.step}/{r.steps}", best, r.started))
    print("\n".join(table(rows)))
    return 0


def register(parser) -> None:
    parser.add_argument("--name", nargs=2, metavar=("RUN", "NAME"),
                        help='give RUN a friendly name, e.g. --name 20261129-2231-SmolLM2 "Spring taglines" '
                             '("" removes it)')
    parser.set_defaults(func=run)
