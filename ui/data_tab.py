"""Data: upload a file, type rows, or pick a recipe's example set; check it and preview one example.

Every file the app trains on is kept inside the localsft home folder (uploads/).
"""

from __future__ import annotations

import csv
import html
import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from localsft import paths
from localsft.errors import UserError
from localsft.train.recipes import recipes_dir
from localsft_ui import browser_input, house_style, served_files
from localsft_ui.common import app_words, plain_errors, tokenizer_for

EXAMPLES_DIR = recipes_dir() / "data"  # the recipes' example sets
DATA_TYPES = [".csv", ".tsv", ".txt", ".xlsx", ".jsonl", ".json"]
NONE = "(none)"


def example_choices() -> list[str]:
    """The example datasets shipped with the recipes."""
    if not EXAMPLES_DIR.is_dir():
        return []
    return sorted(p.name for p in EXAMPLES_DIR.iterdir() if p.suffix in DATA_TYPES)


def keep_upload(uploaded: str) -> Path:
    """Copy an uploaded file into the home folder's uploads/ (Gradio's temp copy is not kept)."""
    source = Path(uploaded)
    target = paths.uploads_dir() / source.name
    if target.exists() and target.read_bytes() != source.read_bytes():
        target = target.with_name(f"{target.stem}-{time.strftime('%Y%m%d-%H%M%S')}{target.suffix}")
    shutil.copyfile(source, target)
    return served_files.keep(target)


def save_table(table: pd.DataFrame) -> Path:
    """Rows typed into the page, saved as a CSV in uploads/."""
    rows = [[str(v).strip() for v in row] for row in table.fillna("").values.tolist()]
    rows = [row for row in rows if any(row)]
    if not rows:
        raise UserError("The table is empty: type at least one input and output.")
    path = paths.uploads_dir() / f"typed-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([list(table.columns)] + rows)
    return served_files.keep(path)


def _mapping(columns: list[str], input_col: str | None, output_col: str | None, system_col: str | None):
    """The columns chosen by hand, or None when they are what localsft picks by itself."""
    from localsft.data import ColumnMapping
    from localsft.data.mapping import detect_mapping

    chosen = [c if c in columns else None for c in (input_col, output_col, system_col)]
    if not (chosen[0] or chosen[1]):
        return None
    mapping = ColumnMapping(input=chosen[0], output=chosen[1], system=chosen[2])
    try:
        detected, _ = detect_mapping(columns)
    except UserError:
        return mapping
    return None if detected == mapping else mapping


def summary_markdown(report) -> str:
    s = report.stats
    removed = report.rows_read - report.rows_kept
    lines = [f"**{Path(report.path).name}**: {report.rows_read} rows read, **{report.rows_kept} kept**"
             + (f", {removed} removed (empty, duplicated or unusable rows: see the list)." if removed else ".")]
    tokens = s.get("tokens")
    if tokens:
        lines.append(f"A typical example is {tokens['median']} tokens long (longest {tokens['max']}); "
                     f"{tokens['trained_tokens_per_epoch']:,} tokens of answers to learn per pass.")
    whole = [p.message for p in report.problems if p.line is None]
    lines += [f"- {app_words(m)}" for m in whole]
    lines.append("Ready to train." if report.trainable else "**This set cannot be trained on yet** (see above).")
    return "\n\n".join(lines)


PROBLEM_HEADERS = ["row", "what happened", "why"]


def problems_rows(report) -> list[list]:
    """Problems by spreadsheet row: a dropped row is "removed" (not an error), a kept one "kept, check it"."""
    return [[p.row, "removed" if p.severity == "error" else "kept, check it", app_words(p.message)]
            for p in report.problems if p.line is not None]


def histogram_frame(report) -> pd.DataFrame | None:
    """Examples per length bucket; None without token counts (Gradio 6.31 plots draw nothing
    after once getting an empty table, so they start from None)."""
    bins = (report.stats.get("tokens") or {}).get("histogram", [])
    labels = [f"≤ {b['up_to']}" if b["up_to"] else "too long" for b in bins]
    return pd.DataFrame({"tokens": labels, "examples": [b["count"] for b in bins]}) if bins else None


def _example_at_row(report, row) -> tuple[dict | None, str]:
    """The kept example from spreadsheet row `row` (the first kept one when empty), or why there is none."""
    if not report or not report.examples:
        return None, ""
    if not row:
        return report.examples[0], ""
    row = int(row)
    if row < 1:
        return None, f"Rows are numbered from 1, as in your spreadsheet; {row} is not a row."
    if row in report.rows:
        return report.examples[report.rows.index(row)], ""
    why = next((p.message for p in report.problems if p.row == row), None)
    if why:
        return None, f"Row {row} was removed: {app_words(why)}"
    return None, f"There is no example in row {row}; rows {report.rows[0]} to {report.rows[-1]} hold them."


def with_instructions(example: dict | None, instructions: str | None) -> dict | None:
    """The example as training will see it: `instructions` (the run's system prompt) first when it
    has no system message of its own."""
    from localsft.data.mapping import with_system

    if not example or not example.get("messages"):
        return example
    return {**example, "messages": with_system(example["messages"], (instructions or "").strip())}


def preview_chat(report, row, instructions: str | None = None) -> str:
    """The example of that row as a chat: system, user and assistant bubbles; the answer it learns highlighted."""
    example, why = _example_at_row(report, row)
    example = with_instructions(example, instructions)
    if example is None:
        return html.escape(why)
    style = {"system": "background:#f3f4f6;color:#374151", "user": "background:#e0ecff;margin-right:20%",
             "assistant": "background:#dcfce7;border:2px solid #16a34a;margin-left:20%"}
    who = {"system": "Instructions (system)", "user": "You ask (user)",
           "assistant": "It learns to answer (assistant)"}
    bubbles = [f'<div class="bubble {m["role"]}" style="{style.get(m["role"], "")};border-radius:10px;'
               f'padding:6px 10px;margin:6px 0;white-space:pre-wrap"><small>{who.get(m["role"], m["role"])}</small>'
               f'<div>{html.escape(str(m.get("content", "")))}</div></div>' for m in example.get("messages", [])]
    return "".join(bubbles) or html.escape(example.get("text", ""))


def preview_pieces(report, row, model: str | None, instructions: str | None = None) -> list[tuple[str, str | None]]:
    """The example of that row exactly as the model sees it (template tokens included); the tokens
    it learns from are highlighted."""
    from localsft.data import preview

    example, _ = _example_at_row(report, row)
    example = with_instructions(example, instructions)
    if example is None:
        return []
    return [(piece, "learned" if trained else None) for piece, trained in preview(tokenizer_for(model), example)]


def show_row(report, row, model, instructions: str | None = None):
    return preview_chat(report, row, instructions), preview_pieces(report, row, model, instructions)


def _trainable_file(report, path: Path, mapping) -> str | None:
    """The file to train on: the checked file itself, or (columns changed by hand) its examples as JSONL."""
    if not report.trainable:
        return None
    if mapping is None:
        return str(path)
    out = paths.uploads_dir() / f"{path.stem}.mapped.jsonl"
    out.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in report.examples), encoding="utf-8")
    return str(served_files.keep(out))


@plain_errors
def check_file(path: str | None, input_col: str | None, output_col: str | None, system_col: str | None,
               model: str | None, progress=gr.Progress()):
    """Check the examples file; returns every output of the report area. A file that cannot be
    used replaces the previous report with the reason (nothing of the previous file stays)."""
    from localsft.data.isolated import check_isolated
    from localsft.data.mapping import ColumnsUnknown

    path = browser_input.data_file(path)
    progress(0.1, desc="Reading and checking the examples…")
    try:  # read in a child process: a crafted file cannot take the app down
        report = check_isolated(path, tokenizer=tokenizer_for(model))
        columns = report.stats.get("columns") or []
    except ColumnsUnknown as err:  # readable, but the user picks the columns (from these)
        report, columns = None, err.columns
        if not (input_col and output_col):
            return rejected(path, err, columns)
    except UserError as err:
        return rejected(path, err, [])
    try:
        mapping = _mapping(columns, input_col, output_col, system_col)
        if mapping is not None:  # columns chosen by hand
            report = check_isolated(path, tokenizer=tokenizer_for(model), mapping=mapping)
        elif report is None:
            raise UserError("Choose the Input column and the Output column, then press Check again.")
    except UserError as err:
        return rejected(path, err, columns)
    used = report.stats.get("mapping", {})
    histogram = histogram_frame(report)
    bars = gr.update(value=histogram, sort=None if histogram is None else list(histogram["tokens"]))
    first = report.rows[0] if report.rows else None
    return (report, _trainable_file(report, path, mapping), summary_markdown(report), problems_rows(report),
            bars, *_pickers(columns, used), gr.update(value=first), preview_chat(report, first),
            preview_pieces(report, first, model), gr.update(interactive=report.trainable), "")


def _pickers(columns: list[str], used: dict) -> list:
    choices = [NONE] + columns
    return [gr.update(choices=choices, value=used.get(role) or NONE, interactive=bool(columns))
            for role in ("input", "output", "system")]


def rejected(path: Path, err: UserError, columns: list[str]) -> tuple:
    """The report area for a file that cannot be used: its reason, its columns to choose from (if any),
    and nothing left of the previous file (house-style preview included)."""
    hint = " Then press **Check again**." if columns else ""
    summary = f"**{path.name} cannot be used yet.** {app_words(str(err))}{hint}"
    return (None, None, summary, [], gr.update(value=None), *_pickers(columns, {}), gr.update(value=None),
            "", [], gr.update(interactive=False), "")


@plain_errors
def use_upload(uploaded: str | None) -> str:
    if not uploaded:
        raise UserError("No file was uploaded.")
    return str(keep_upload(uploaded))


@plain_errors
def use_example(name: str | None) -> str:
    if not name:
        raise UserError("Choose an example set.")
    return str(browser_input.example_set(name))


@plain_errors
def use_table(table: pd.DataFrame) -> str:
    return str(save_table(table))


def build(data_file: gr.State) -> SimpleNamespace:
    with gr.Tab("Data", id="data"):
        gr.Markdown("Bring examples of what you want: an **input** (what you ask) and an **output** "
                    "(the answer you want back). CSV, Excel, JSONL or JSON.")
        source = gr.State(None)  # the file being checked
        report = gr.State(None)
        model = gr.State(None)  # the data check's tokenizer: the default model
        with gr.Row():
            upload = gr.File(label="Upload a file", file_types=DATA_TYPES, type="filepath", elem_id="data-upload")
            with gr.Column():
                example = gr.Dropdown(label="…or an example set", choices=example_choices(), value=None,
                                      elem_id="data-example")
                example_btn = gr.Button("Use this example set", elem_id="data-example-use")
        with gr.Accordion("…or type rows", open=False):
            table = gr.Dataframe(headers=["input", "output"], value=[["", ""]], interactive=True,
                                 row_count=3, wrap=True)
            table_btn = gr.Button("Use these rows")
        with gr.Row():
            input_col = gr.Dropdown(label="Input column", choices=[NONE], interactive=False)
            output_col = gr.Dropdown(label="Output column", choices=[NONE], interactive=False)
            system_col = gr.Dropdown(label="System column", choices=[NONE], interactive=False)
            recheck = gr.Button("Check again")
        instructions = gr.Textbox(
            label="Instructions (optional)", lines=1, max_lines=4, elem_id="data-instructions",
            placeholder="Write the glossary entry for this term.",
            info="What the model should do with each input. Every example without instructions of its own "
                 "gets them (the system prompt); they help it learn from few examples, and the tuned model "
                 "gets them again wherever it answers. Blank: the recipe's, if it has some.")
        summary = gr.Markdown(elem_id="data-summary")
        with gr.Row():
            problems = gr.Dataframe(headers=PROBLEM_HEADERS, interactive=False, wrap=True,
                                    label="Rows to look at (row = the row your spreadsheet shows)", elem_id="data-problems")
            histogram = gr.BarPlot(None,
                                   x="tokens", y="examples", title="Example lengths (tokens)",
                                   sort=None, height=260)
        index = gr.Number(label="Show the example in row", value=None, precision=0, elem_id="data-row")
        chat = gr.HTML(elem_id="data-chat", label="The example as a chat")
        with gr.Accordion("Details: exactly what the model reads", open=False):
            preview = gr.HighlightedText(label="Template tokens included (highlighted: what it learns to write)",
                                         color_map={"learned": "green"}, show_legend=True, elem_id="data-preview")
        style, style_result = house_style.build(report)
        to_train = gr.Button("Train on these examples →", variant="primary", interactive=False,
                             elem_id="data-to-train")
        no_column = gr.State(NONE)  # a new file: columns found by name (created in the tab, not in gr.Tabs)

    outputs = [report, data_file, summary, problems, histogram, input_col, output_col, system_col, index, chat,
               preview, to_train, style_result]
    mapping = [input_col, output_col, system_col, model]
    detect = [source, no_column, no_column, no_column, model]
    shown = ([report, index, model, instructions], [chat, preview])  # the example as trained, instructions first
    upload.upload(use_upload, upload, source).success(check_file, detect, outputs).success(show_row, *shown)
    example_btn.click(use_example, example, source).success(check_file, detect, outputs).success(show_row, *shown)
    table_btn.click(use_table, table, source).success(check_file, detect, outputs).success(show_row, *shown)
    recheck.click(check_file, [source, *mapping], outputs).success(show_row, *shown)
    in_order = {"concurrency_id": "data-preview", "concurrency_limit": 1}  # the last request shown last
    index.submit(show_row, *shown, **in_order)
    instructions.change(show_row, *shown, show_progress="hidden", **in_order)
    return SimpleNamespace(to_train=to_train, source=source, style=style, instructions=instructions)
