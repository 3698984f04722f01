"""The verdict: what the held-out evaluation means for the user, in plain words and one recommendation.

Built from eval.json alone (the dict `EvalReport.to_dict()` gives), so `localsft eval`, the
studio's verdict card and the Compare table say the same thing:

    closer to your examples: 17 vs 10
    kept general knowledge: 108%
    follows your format: 92% vs 0%
    -> use it / train longer / fix the data

The technical scores (loss, perplexity, chrF, exact match) stay available as `details`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

USE_IT, TRAIN_LONGER, FIX_DATA = "use it", "train longer", "fix the data"

# key -> (plain label, one sentence saying what it measures). The studio and the CLI use these words.
LABELS = {
    "closeness": ("How close to your examples",
                  "How much the answers resemble your own answers for examples kept aside from training "
                  "(0 to 100, higher is closer)."),
    "knowledge": ("General knowledge kept",
                  "The tuned model's score on everyday general-knowledge questions, as a share of the base "
                  "model's (100% means nothing was forgotten)."),
    "format": ("Follows your format",
               "Share of answers that pass your house-style check."),
}
# Technical scores, shown only under "Details": (eval.json field, name, format).
DETAILS = [("loss", "validation loss (lower is better)", "{:.3f}"), ("perplexity", "perplexity (lower is better)", "{:.2f}"),
           ("chrf", "chrF (character n-gram F-score)", "{:.1f}"), ("exact_match", "exact match", "{:.0%}"),
           ("format_adherence", "format adherence", "{:.0%}"), ("probe_accuracy", "general-knowledge probe accuracy", "{:.0%}")]

CLEAR_GAIN = 5.0  # closeness points (chrF) that a user notices when reading answers side by side
SOME_GAIN = 1.0
KEPT_ENOUGH = 0.8  # below this share of general knowledge, the tuning cost too much
FORMAT_GOOD = 0.8
FEW_EXAMPLES = 5


@dataclass
class Finding:
    """One plain-words line of the verdict, with both sides' values as shown."""

    key: str  # closeness, knowledge, format
    label: str
    explanation: str
    base: str
    tuned: str
    text: str  # e.g. "closer to your examples: 17 vs 10"


@dataclass
class Verdict:
    """The recommendation (use it / train longer / fix the data), why, and the findings behind it."""

    recommendation: str
    reason: str
    examples: int
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def headline(self) -> str:
        return f"{self.recommendation.capitalize()}: {self.reason}"

    def lines(self) -> list[str]:
        """The verdict as plain text lines (what `localsft eval` prints)."""
        width = max((len(f.label) for f in self.findings), default=0)
        out = [f"Verdict: {self.headline}", ""]
        out += [f"  {f.label:<{width}}  {f.text}" for f in self.findings]
        return out + [f"  ({note})" for note in self.notes]


def _side(report: dict, side: str, name: str):
    value = (report.get(side) or {}).get(name)
    return value if isinstance(value, (int, float)) else None


def _findings(report: dict) -> list[Finding]:
    found = []
    base_c, tuned_c = _side(report, "base", "chrf"), _side(report, "tuned", "chrf")
    if base_c is not None and tuned_c is not None:
        word = "closer to" if tuned_c > base_c else "not closer to"
        found.append(Finding("closeness", *LABELS["closeness"], f"{base_c:.0f}", f"{tuned_c:.0f}",
                             f"{word} your examples: {tuned_c:.0f} vs {base_c:.0f} for the base model"))
    kept = report.get("retention")
    if isinstance(kept, (int, float)):
        base_p, tuned_p = _side(report, "base", "probe_accuracy"), _side(report, "tuned", "probe_accuracy")
        found.append(Finding("knowledge", *LABELS["knowledge"], "100%", f"{kept:.0%}",
                             f"kept general knowledge: {kept:.0%}"
                             + (f" ({tuned_p:.0%} vs {base_p:.0%} of the questions right)" if base_p else "")))
    base_f, tuned_f = _side(report, "base", "format_adherence"), _side(report, "tuned", "format_adherence")
    if tuned_f is not None:
        base_text = "n/a" if base_f is None else f"{base_f:.0%}"
        found.append(Finding("format", *LABELS["format"], base_text, f"{tuned_f:.0%}",
                             f"follows your format: {tuned_f:.0%} vs {base_text} for the base model"))
    return found


def _recommend(report: dict) -> tuple[str, str]:
    gain = (_side(report, "tuned", "chrf") or 0.0) - (_side(report, "base", "chrf") or 0.0)
    base_loss, tuned_loss = _side(report, "base", "loss"), _side(report, "tuned", "loss")
    learned = base_loss is not None and tuned_loss is not None and tuned_loss < base_loss
    kept = report.get("retention")
    base_f, tuned_f = _side(report, "base", "format_adherence"), _side(report, "tuned", "format_adherence")
    format_gain = tuned_f is not None and tuned_f - (base_f or 0.0) >= 0.2
    if isinstance(kept, (int, float)) and kept < KEPT_ENOUGH:
        return FIX_DATA, (f"it forgot general knowledge (kept {kept:.0%}). Add more varied examples, "
                          f"or train for fewer steps.")
    if gain < SOME_GAIN and not format_gain and not learned:
        return FIX_DATA, ("it did not get closer to your examples. Check that your answers are consistent "
                          "and that there are enough of them (a few hundred is a good start).")
    if tuned_f is not None and tuned_f < FORMAT_GOOD:
        return TRAIN_LONGER, (f"it follows your format in {tuned_f:.0%} of answers; more training (or more "
                              f"examples in that format) should raise it.")
    if gain < CLEAR_GAIN and not format_gain:
        return TRAIN_LONGER, (f"it is only a little closer to your examples ({gain:+.0f}); train for more "
                              f"steps (or add examples) and compare again.")
    return USE_IT, "the tuned model writes closer to your examples and keeps what the base model knew."


def verdict(report: dict) -> Verdict:
    """The verdict for an evaluation report (eval.json as a dict)."""
    recommendation, reason = _recommend(report)
    examples = int(report.get("examples") or 0)
    notes = [f"measured on {examples} held-out example{'s' if examples != 1 else ''}"
             + ("; so few that the numbers are rough" if examples < FEW_EXAMPLES else "")]
    return Verdict(recommendation, reason, examples, _findings(report), notes)


def details(report: dict) -> list[tuple[str, str, str]]:
    """(score name, base, tuned) for the technical scores present in the report."""
    rows = []
    for name, label, fmt in DETAILS:
        base, tuned = _side(report, "base", name), _side(report, "tuned", name)
        if base is not None or tuned is not None:
            rows.append((label, "n/a" if base is None else fmt.format(base), "n/a" if tuned is None else fmt.format(tuned)))
    return rows
