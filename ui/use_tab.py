"""Use: fill a spreadsheet with a run's answers. Upload (or pick) a file, pick a run, preview
5 rows here, then "Fill all" as a background job (`localsft.fill.job`, a child process running
`localsft fill`) with progress, time left, Stop, and the filled file to download.
"""

from __future__ import annotations

import html
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from localsft import paths
from localsft.errors import UserError
from localsft.fill import job as fill_job
from localsft_ui.common import plain_errors
from localsft_ui.data_tab import keep_upload

POLL_SECONDS = 2.0
FILE_TYPES = [".csv", ".tsv", ".xlsx", ".jsonl", ".json"]
PREVIEW_ROWS = 5
WORDS = {"running": "Filling…", "finished": "Done.", "stopped": "Stopped.", "failed": "Failed."}


def file_choices() -> list[str]:
    """Files uploaded to this app that can be filled (not the filled ones themselves)."""
    return sorted(p.name for p in paths.uploads_dir().iterdir()
                  if p.suffix.lower() in FILE_TYPES and ".filled" not in p.suffixes and not p.name.startswith("."))


def target_choices() -> list[str]:
    """Finished runs (newest first) and base models."""
    from localsft.inference.targets import list_targets

    targets = list_targets()
    return [t.id for t in targets if t.run] + [t.id for t in targets if not t.run]


def refresh(file: str | None, target: str | None):
    files, targets = file_choices(), target_choices()
    return (gr.update(choices=files, value=file if file in files else (files[0] if files else None)),
            gr.update(choices=targets, value=target if target in targets else (targets[0] if targets else None)))


@plain_errors
def uploaded(path: str | None, target: str | None):
    if not path:
        raise UserError("No file was uploaded.")
    kept = keep_upload(path).name
    return refresh(kept, target)[0]


def _chosen(file: str | None, target: str | None) -> Path:
    if not file:
        raise UserError("Upload a file or pick one first.")
    if not target:
        raise UserError("Pick a run (or a base model) first.")
    return paths.uploads_dir() / Path(file).name  # a name from our own list: never a path outside


@plain_errors
def preview(file: str | None, target: str | None, with_base: bool, max_tokens: float, temperature: float):
    """The first rows answered here and now (a generator: MLX work stays on one thread)."""
    from localsft.fill import FillOptions, fill_file
    from localsft.inference.generate import SamplingSettings

    data = _chosen(file, target)
    out = paths.uploads_dir() / f".preview-{data.stem}{data.suffix}"
    out.unlink(missing_ok=True)  # our own scratch file
    settings = SamplingSettings(max_tokens=int(max_tokens), temperature=float(temperature))
    fill_file(target, data, FillOptions(out=out, with_base=with_base, settings=settings, limit=PREVIEW_ROWS))
    yield _table(out)


def _table(path: Path) -> pd.DataFrame:
    from localsft.data.formats import open_source

    source = open_source(path)
    rows = [record.data or {} for record in source.rows]
    columns = source.columns or (list(rows[0]) if rows else [])
    return pd.DataFrame([[str(row.get(c, "")) for c in columns] for row in rows], columns=columns)


@plain_errors
def fill_all(file: str | None, target: str | None, with_base: bool, max_tokens: float, temperature: float):
    fill_job.start_fill(target, _chosen(file, target), with_base=with_base, max_tokens=int(max_tokens),
                        temperature=float(temperature))
    return poll()


def stop():
    fill_job.stop_fill()
    return poll()


def _duration(seconds) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def status_html(state: dict | None) -> str:
    if state is None:
        return ""
    done, total = state["done"], state["total"]
    detail = f"{done} of {total} rows" if total else "Loading the model…"
    if state["status"] == "running" and state["rows_per_s"]:
        detail += f" · {state['rows_per_s']:.2f} rows/s · about {_duration(state['seconds_left'])} left"
    message = f"<div>{html.escape(state['message'])}</div>" if state["message"] else ""
    return (f'<div id="use-progress" data-status="{state["status"]}"><b>{html.escape(Path(state["data"]).name)}'
            f'</b> with <b>{html.escape(state["target"])}</b>: {WORDS[state["status"]]}<br>'
            f'<progress value="{done}" max="{max(total or 1, 1)}" style="width:100%"></progress>'
            f"<div>{detail}</div>{message}</div>")


def poll():
    """The latest fill (from any page or tab): its progress, and the file once rows are in it."""
    state = fill_job.fill_state()
    out = state and Path(state["out"])
    download = str(out) if out and out.exists() and state["status"] != "running" else None
    return status_html(state), download


def build() -> SimpleNamespace:
    with gr.Tab("Use", id="use"):
        gr.Markdown("Answer every row of a spreadsheet with a tuned model: the answers are added as a new column.")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Upload a file (.xlsx, .csv, .tsv, .jsonl)", file_types=FILE_TYPES,
                                 type="filepath", elem_id="use-upload")
                file = gr.Dropdown(label="…or pick an uploaded file", choices=file_choices(), elem_id="use-file")
            with gr.Column():
                target = gr.Dropdown(label="Run (or base model)", choices=[], elem_id="use-target")
                with_base = gr.Checkbox(label="Also add the base model's answer", value=False)
                max_tokens = gr.Slider(8, 1024, value=256, step=8, label="Longest answer (tokens)")
                temperature = gr.Slider(0, 1.5, value=0, step=0.05, label="Temperature (0: always the same answer)")
        with gr.Row():
            preview_btn = gr.Button(f"Preview {PREVIEW_ROWS} rows", elem_id="use-preview")
            fill_btn = gr.Button("Fill all", variant="primary", elem_id="use-fill")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="use-stop")
        table = gr.Dataframe(interactive=False, wrap=True, elem_id="use-table")
        status = gr.HTML(elem_id="use-status")
        download = gr.File(label="Filled file", interactive=False, elem_id="use-download")
        timer = gr.Timer(POLL_SECONDS)

    settings = [file, target, with_base, max_tokens, temperature]
    upload.upload(uploaded, [upload, target], file)
    preview_btn.click(preview, settings, table)
    fill_btn.click(fill_all, settings, [status, download])
    stop_btn.click(stop, None, [status, download])
    timer.tick(poll, None, [status, download], show_progress="hidden")
    return SimpleNamespace(file=file, target=target, refresh=refresh, poll=poll, status=status, download=download)
