"""The data report: problems found, statistics, and a plain-text rendering of both."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

MAX_LISTED = 500  # problems kept in the list; all of them are counted in stats


@dataclass
class Problem:
    """One finding. row: the spreadsheet row (readers.Record.row), line: the file line it starts on;
    both None for the whole file."""

    line: int | None
    column: str | None
    severity: str  # "error" (row dropped, or the set cannot be trained) or "warning" (kept)
    message: str
    code: str = ""  # short reason, the key of stats["dropped"] / stats["warnings"]
    row: int | None = None  # None: the same as line

    def __post_init__(self):
        self.row = self.line if self.row is None else self.row


@dataclass
class DataReport:
    """What `check` and `prepare` found. `examples` holds the kept normalized examples."""

    path: str
    rows_read: int = 0
    rows_kept: int = 0
    problems: list[Problem] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    trainable: bool = False
    examples: list[dict] = field(default_factory=list, repr=False)
    lines: list[int] = field(default_factory=list, repr=False)  # file line of each kept example
    rows: list[int] = field(default_factory=list, repr=False)  # spreadsheet row of each kept example
    dropped: Counter = field(default_factory=Counter, repr=False)
    warned: Counter = field(default_factory=Counter, repr=False)

    def add(self, line: int | None, severity: str, message: str, column: str | None = None, code: str = "",
            row: int | None = None) -> None:
        counter = self.dropped if severity == "error" and line is not None else self.warned
        if line is not None:
            counter[code or "other"] += 1
        if len(self.problems) < MAX_LISTED or line is None:
            self.problems.append(Problem(line, column, severity, message, code, row))

    def to_dict(self) -> dict:
        """Stable JSON keys: path, rows_read, rows_kept, trainable, problems (each with its row and line), stats."""
        return {"path": self.path, "rows_read": self.rows_read, "rows_kept": self.rows_kept,
                "trainable": self.trainable, "problems": [asdict(p) for p in self.problems], "stats": self.stats}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


def length_stats(lengths: list[int], loss: list[int], max_seq_len: int) -> dict:
    """Token length summary, a power-of-two histogram, tokens per epoch, input/output ratio."""
    if not lengths:
        return {}
    ordered = sorted(lengths)
    n = len(ordered)
    edges, edge = [], 16
    while edge < min(ordered[-1], max_seq_len):
        edges.append(edge)
        edge *= 2
    edges.append(min(edge, max_seq_len))
    counts = Counter(next((e for e in edges if x <= e), None) for x in ordered)
    histogram = [{"up_to": e, "count": counts.get(e, 0)} for e in edges]
    if counts.get(None):
        histogram.append({"up_to": None, "count": counts[None]})  # longer than max_seq_len
    total, trained = sum(ordered), sum(loss)
    return {"min": ordered[0], "mean": round(total / n, 1), "median": ordered[n // 2],
            "p95": ordered[min(n - 1, int(n * 0.95))], "max": ordered[-1],
            "over_max_seq_len": sum(x > max_seq_len for x in ordered), "histogram": histogram,
            "tokens_per_epoch": total, "trained_tokens_per_epoch": trained,
            "input_output_ratio": round((total - trained) / trained, 2) if trained else None}


def format_report(report: DataReport, limit: int = 20) -> str:
    """The report as text for a terminal: summary, problems (the first `limit`), token statistics."""
    s = report.stats
    out = [f"{report.path}: {s.get('format', '?')}"
           + "".join(f", {k} {s[k]}" for k in ("encoding", "delimiter", "sheet") if s.get(k))
           + (f" (sheets: {', '.join(s['sheets'])}; choose one with --sheet)" if len(s.get("sheets", [])) > 1 else ""),
           f"columns: {', '.join(f'{k}={v!r}' for k, v in s.get('mapping', {}).items())}",
           f"rows read {report.rows_read}, kept {report.rows_kept}, dropped {report.rows_read - report.rows_kept}"
           + "".join(f"\n  dropped ({reason}): {n}" for reason, n in s.get("dropped", {}).items())]
    for reason, n in s.get("warnings", {}).items():
        out.append(f"  warned ({reason}): {n}")
    tokens = s.get("tokens")
    if tokens:
        out.append(f"tokens per example: min {tokens['min']}, median {tokens['median']}, mean {tokens['mean']}, "
                   f"p95 {tokens['p95']}, max {tokens['max']} (max_seq_len {s['max_seq_len']})")
        out.append(f"tokens per epoch: {tokens['tokens_per_epoch']:,} ({tokens['trained_tokens_per_epoch']:,} "
                   f"trained); input/output ratio {tokens['input_output_ratio']}")
        width = max(b["count"] for b in tokens["histogram"]) or 1
        for b in tokens["histogram"]:
            label = f"<= {b['up_to']}" if b["up_to"] else f"> {s['max_seq_len']}"
            out.append(f"  {label:>9} | {'#' * round(30 * b['count'] / width):<30} {b['count']}")
    if report.problems:
        out.append("problems:")
        for p in report.problems[:limit]:
            column = f" (column {p.column!r})" if p.column and repr(p.column) not in p.message else ""
            out.append(f"  {p.severity}: {p.message}{column}")
        total = sum(report.dropped.values()) + sum(report.warned.values())
        total += sum(p.line is None for p in report.problems)
        if total > limit:
            out.append(f"  ... and {total - limit} more (--json lists up to {MAX_LISTED})")
    if "splits" in s:
        out.append("splits: " + ", ".join(f"{k} {v}" for k, v in s["splits"].items()))
    out.append("trainable: yes" if report.trainable else "trainable: NO (see the errors above)")
    return "\n".join(out)
