"""The verdict card and the evaluation tables, in the words of localsft.evaluation.verdict.

The Train tab shows the card after a run is checked; the Compare tab shows the same words in
its evaluation table, the technical scores under "Details", and the held-out examples side by side.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from localsft.evaluation.verdict import USE_IT, TRAIN_LONGER, details, verdict

COLOURS = {USE_IT: "#1a7f37", TRAIN_LONGER: "#9a6700"}  # anything else (fix the data): red
EXAMPLE_HEADERS = ["example kept aside", "your answer", "base model", "tuned model"]
TABLE_HEADERS = ["", "base model", "tuned model", "what it means"]
PROBE_LIMIT = 20  # general-knowledge questions asked when checking from the studio (about a minute here)


def read_eval(run_dir: str | Path | None) -> dict | None:
    """The run's eval.json, or None when it was not evaluated (or the file is unreadable)."""
    if not run_dir:
        return None
    try:
        return json.loads((Path(run_dir) / "eval.json").read_text())
    except (OSError, ValueError):
        return None


def card_html(report: dict | None) -> str:
    """The verdict card: the recommendation in large words, the findings, and how many examples."""
    if not report:
        return ""
    v = verdict(report)
    colour = COLOURS.get(v.recommendation, "#cf222e")
    findings = "".join(f"<li><b>{html.escape(f.label)}</b>: {html.escape(f.text)}</li>" for f in v.findings)
    notes = "".join(f"<div style='opacity:.75'>{html.escape(n.capitalize())}.</div>" for n in v.notes)
    return (f'<div id="verdict-card" data-recommendation="{html.escape(v.recommendation)}" '
            f'style="border:2px solid {colour};border-radius:10px;padding:12px 16px">'
            f'<div style="font-size:1.4em;font-weight:bold;color:{colour}">{html.escape(v.recommendation.capitalize())}</div>'
            f"<div>{html.escape(v.reason[0].upper() + v.reason[1:])}</div><ul>{findings}</ul>{notes}</div>")


def table_rows(report: dict | None) -> list[list[str]]:
    """The evaluation in plain words: one row per finding, both sides, and one sentence of meaning."""
    if not report:
        return []
    return [[f.label, f.base, f.tuned, f.explanation] for f in verdict(report).findings]


def details_rows(report: dict | None) -> list[list[str]]:
    """The technical scores (loss, perplexity, chrF, ...) for the Details accordion."""
    return [list(row) for row in details(report)] if report else []


def example_rows(report: dict | None) -> list[list[str]]:
    """Each held-out example with your answer and both models' answers, side by side."""
    rows = []
    for item in (report or {}).get("items", []):
        prompt = "\n".join(m["content"] for m in item.get("prompt", []) if m.get("role") == "user")
        rows.append([prompt, item.get("reference", ""), item.get("base", ""), item.get("tuned", "")])
    return rows

