"""Your house style (Data tab): the shape every answer must have, previewed on your own examples.

What the user fills in becomes the run's `format_check` (localsft.evaluation.house_style), so the
evaluation, the verdict ("Follows your format") and the Compare table score the tuned model on it.
"""

from __future__ import annotations

import html

import gradio as gr

from localsft.errors import UserError
from localsft.evaluation import house_style
from localsft_ui.common import plain_errors


def _answers(report) -> tuple[list[str], list[int]]:
    """The answers (last assistant turn) of the checked examples, with their spreadsheet rows."""
    answers, rows = [], []
    for example, row in zip(report.examples if report else [], report.rows if report else []):
        turns = [m["content"] for m in example.get("messages", []) if m.get("role") == "assistant"]
        if turns:
            answers.append(turns[-1])
            rows.append(row)
    return answers, rows


def spec_from(starts_with, line_starts_with, ends_with, max_length, regex) -> dict | None:
    """The house style as a format_check mapping; a bad rule or regex is a plain message."""
    spec = house_style.clean_spec(starts_with, line_starts_with, ends_with, max_length, regex)
    if spec and "regex" in spec:
        try:
            house_style.preview({"regex": spec["regex"]}, [])
        except UserError as err:
            raise UserError(f"The pattern in \"Pattern (for experts)\" is not a valid regular expression: "
                            f"{str(err).split(': ', 1)[-1]}") from None
    return spec


@plain_errors
def check_style(report, starts_with, line_starts_with, ends_with, max_length, regex):
    """Preview the house style on the user's examples; returns (spec for training, result text)."""
    spec = spec_from(starts_with, line_starts_with, ends_with, max_length, regex)
    if spec is None:
        return None, "No house style set: answers are not checked for a format."
    answers, rows = _answers(report)
    if not answers:
        return spec, "Saved. Check your examples above to see how many of them follow it."
    result = house_style.preview(spec, answers, rows)
    lines = [f'<b id="style-result">{html.escape(result.describe())}</b>']
    lines += [f"<div>Row {row}: {html.escape(why)}</div>" for row, why in result.failures]
    lines.append("<div style='opacity:.75'>Training will use it to score the answers (\"Follows your format\").</div>")
    return spec, "".join(lines)


def build(report: gr.State) -> tuple[gr.State, gr.HTML]:
    """The house-style accordion; returns the state that holds its format_check (None: no check)
    and the preview (cleared whenever another file is checked)."""
    style = gr.State(None)
    with gr.Accordion("Your house style (optional)", open=False, elem_id="house-style"):
        gr.Markdown("Describe the shape every answer must have. Leave a box empty to skip that rule.")
        with gr.Row():
            starts = gr.Textbox(label="Starts with", placeholder="Subject:", elem_id="style-starts")
            line = gr.Textbox(label="Has a line starting with", placeholder="Price:", elem_id="style-line")
            ends = gr.Textbox(label="Ends with", placeholder="!", elem_id="style-ends")
            longest = gr.Number(label="At most this many characters (0: no limit)", value=None, precision=0,
                                elem_id="style-max")
        with gr.Accordion("Details: a pattern, for experts", open=False):
            regex = gr.Textbox(label="Pattern (for experts): a regular expression the whole answer must match",
                               elem_id="style-regex")
        check_btn = gr.Button("Check my examples against it", elem_id="style-check")
        result = gr.HTML(elem_id="style-preview")
    fields = [starts, line, ends, longest, regex]
    check_btn.click(check_style, [report, *fields], [style, result])
    for field in fields:  # what is typed counts for training even without a preview
        field.change(quiet_spec, fields, style, show_progress="hidden")
    return style, result


def quiet_spec(*values) -> dict | None:
    """The spec while typing (an unfinished regex counts as none until it is valid)."""
    try:
        return spec_from(*values)
    except UserError:
        return None
