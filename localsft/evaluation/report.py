"""eval.md: the evaluation report as a person reads it (eval.json holds the same, for tools)."""

from __future__ import annotations

from localsft.evaluation.evaluate import EvalReport

MAX_EXAMPLES_SHOWN = 50

_ROWS = [  # (label, SideScores field, format, higher is better)
    ("Validation loss", "loss", "{:.3f}", False),
    ("Perplexity", "perplexity", "{:.2f}", False),
    ("Exact match", "exact_match", "{:.0%}", True),
    ("chrF", "chrf", "{:.1f}", True),
    ("Format adherence", "format_adherence", "{:.0%}", True),
    ("General-knowledge probes", "probe_accuracy", "{:.0%}", True),
]


def _cell(value, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def _verdict(base, tuned, higher_is_better: bool) -> str:
    if base is None or tuned is None or base == tuned:
        return ""
    return "better" if (tuned > base) == higher_is_better else "worse"


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in (text.strip() or "(empty)").splitlines())


def _prompt_text(messages: list[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def render_markdown(report: EvalReport) -> str:
    """The whole report: summary table, retention, then every example side by side."""
    base, tuned = report.base, report.tuned
    lines = [f"# Evaluation of run {report.run}", "", *_verdict_lines(report),
             f"{report.examples} held-out examples from `{report.data}`; greedy decoding.", "",
             "| Metric | Base | Tuned | |", "|---|---|---|---|"]
    for label, name, fmt, higher in _ROWS:
        b, t = getattr(base, name), getattr(tuned, name)
        if b is None and t is None:
            continue
        lines.append(f"| {label} | {_cell(b, fmt)} | {_cell(t, fmt)} | {_verdict(b, t, higher)} |")
    lines.append("")
    if report.retention is not None:
        lines += [f"**Retention: {report.retention:.0%}** of the base model's general-knowledge "
                  f"answers ({len(report.probes)} probe questions). Below 100% means the tuning "
                  "made the model forget some general knowledge.", ""]
    lines += _examples(report)
    lines += _probe_misses(report)
    return "\n".join(lines) + "\n"


def _verdict_lines(report: EvalReport) -> list[str]:
    """The verdict in plain words (as `localsft eval` prints it and the studio shows it)."""
    from localsft.evaluation.verdict import verdict

    v = verdict(report.to_dict())
    return [f"**{v.headline}**", "", *[f"- {f.label}: {f.text}" for f in v.findings], "",
            *[f"_{note.capitalize()}._" for note in v.notes], ""]


def _examples(report: EvalReport) -> list[str]:
    shown = report.items[:MAX_EXAMPLES_SHOWN]
    if not shown:
        return []
    lines = ["## Examples", ""]
    if len(report.items) > len(shown):
        lines += [f"The first {len(shown)} of {len(report.items)}; eval.json has all.", ""]
    for number, item in enumerate(shown, 1):
        lines += [f"### {number}", "", "Prompt:", "", _quote(_prompt_text(item["prompt"])), "",
                  "Reference:", "", _quote(item["reference"]), "",
                  f"Base (chrF {item['base_chrf']:.1f}):", "", _quote(item["base"]), "",
                  f"Tuned (chrF {item['tuned_chrf']:.1f}):", "", _quote(item["tuned"]), ""]
    return lines


def _probe_misses(report: EvalReport) -> list[str]:
    """Probe questions the base model got right and the tuned model got wrong."""
    lost = [row for row in report.probes if row.get("base_correct") and not row.get("tuned_correct")]
    if not lost:
        return []
    lines = ["## Forgotten by the tuned model", ""]
    for row in lost:
        lines.append(f"- {row['question']} base: {row['base'].strip()!r}; tuned: {row['tuned'].strip()!r}")
    return lines + [""]

