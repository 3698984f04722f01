"""Runs: every run with its status and best validation loss; open one in Compare or Export; delete."""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace

import gradio as gr

from localsft.runs import jobs
from localsft.runs.names import friendly_name, set_friendly_name
from localsft_ui import feedback
from localsft_ui.common import plain_errors

HEADERS = ["run", "name", "model", "status", "steps", "best val loss", "started"]


def _skipped(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)  # a damaged run folder never stops the app


def runs_table() -> list[list]:
    """One row per run, newest first (a damaged run folder is left out, with a warning in the app's log)."""
    return [[r.name, friendly_name(r.path) or "", r.model, r.label, f"{r.step}/{r.steps}",
             "" if r.best_val_loss is None else round(r.best_val_loss, 4), r.started]
            for r in jobs.list_runs(warn=_skipped)]


def refresh(selected: str | None):
    rows = runs_table()
    names = [row[0] for row in rows]
    chosen = selected if selected in names else (names[0] if names else None)
    return rows, gr.update(choices=[(row[1] or row[0], row[0]) for row in rows], value=chosen)


@plain_errors
def ask_delete(name: str | None):
    if not name:
        raise gr.Error("Choose a run first.", print_exception=False)
    jobs.find_run(name)
    return gr.update(visible=True), f"Delete run **{name}** and everything in it (adapters, exports)? This cannot be undone."


@plain_errors
def rename(name: str | None, new_name: str):
    """Give the chosen run a friendly name (shown in every list, export and model card)."""
    if not name:
        raise gr.Error("Choose a run first.", print_exception=False)
    kept = set_friendly_name(jobs.find_run(name).path, new_name)
    table, choices = refresh(name)
    return table, choices, f"Run {name} is now called **{kept}**." if kept else f"Run {name} has no name now."


@plain_errors
def confirm_delete(name: str):
    path = jobs.delete_run(name)
    table, choices = refresh(None)
    return table, choices, gr.update(visible=False), f"Deleted {path}."


def api_snippet(name: str | None, request: gr.Request) -> str:
    """How to call the run from code, at this studio's own address (its OpenAI API under /v1)."""
    from localsft.serve.snippet import snippets

    if not name:
        return ""
    host = request.headers.get("host", "") if request else ""
    if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]{1,100}", host):  # the Host header is the client's word
        host = "127.0.0.1:7860"
    code = snippets(name, f"http://{host}/v1", api_key_needed=not host.split(":")[0] in ("127.0.0.1", "localhost"))
    return (f"**Use {name} from your code** (this studio serves the OpenAI API; "
            "`localsft serve` does the same on its own):\n\n"
            f"```python\n{code['python']}```\n\n```bash\n{code['curl']}```")


def build() -> SimpleNamespace:
    with gr.Tab("Runs", id="runs"):
        gr.Markdown("Every training run on this machine. Open one to compare it with its base model or to export it.")
        table = gr.Dataframe(headers=HEADERS, value=runs_table, interactive=False, elem_id="runs-table")
        with gr.Row():
            run = gr.Dropdown(label="Run", choices=[], allow_custom_value=False, scale=3, elem_id="runs-choice")
            refresh_btn = gr.Button("Refresh", scale=1)
        with gr.Row():
            new_name = gr.Textbox(label="Give it a name (shown in every list, export and model card)",
                                  placeholder="Spring taglines", scale=3, elem_id="runs-name")
            rename_btn = gr.Button("Rename", scale=1, elem_id="runs-rename")
        with gr.Row():
            open_compare = gr.Button("Open in Compare", variant="primary")
            open_export = gr.Button("Open in Export")
            delete = gr.Button("Delete…", variant="stop")
        with gr.Row(visible=False) as confirm_row:
            confirm = gr.Button("Yes, delete it", variant="stop")
            cancel = gr.Button("Cancel")
        parent = gr.Markdown(elem_id="runs-parent")  # a run made from feedback: which run it improves
        message = gr.Markdown()
        api = gr.Markdown(elem_id="runs-api")

    refresh_btn.click(refresh, run, [table, run])
    rename_btn.click(rename, [run, new_name], [table, run, message])
    run.change(api_snippet, run, api)
    run.change(feedback.parent_note, run, parent)
    delete.click(ask_delete, run, [confirm_row, message])
    confirm.click(confirm_delete, run, [table, run, confirm_row, message])
    cancel.click(lambda: (gr.update(visible=False), ""), None, [confirm_row, message])
    return SimpleNamespace(table=table, run=run, refresh=refresh, open_compare=open_compare, open_export=open_export)
