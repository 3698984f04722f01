"""Export: write a run's tuned model in the chosen formats (each one checked), download it, push it to the Hub.

The Hugging Face token is typed into a password field, used for one push, and then
cleared: it is never saved or logged.
"""

from __future__ import annotations

import contextlib
import html
import re
import shutil
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from localsft import paths
from localsft.runs import jobs
from localsft.errors import UserError
from localsft.runs.names import display_name
from localsft_ui import served_files
from localsft_ui.common import finished_run_choices, plain_errors, run_dropdown

FORMAT_HELP = {"adapter": "adapter: the small add-on to the base model, for MLX (mlx_lm --adapter-path)",
               "peft": "peft: the small add-on, for Hugging Face transformers (PEFT)",
               "mlx": "mlx: a complete merged MLX model",
               "hf": "hf: a complete merged Hugging Face model (safetensors)",
               "gguf": "gguf: one file for Ollama, LM Studio, llama.cpp"}


def open(name: str | None):  # noqa: A001  (the Runs tab's "Open in Export")
    return run_dropdown(name), gr.Tabs(selected="export")


def zip_folder(folder: Path, name: str) -> Path:
    """One download per export: the folder as `name`.zip in downloads/ (the only folder served by path),
    made again when it is missing (old downloads are cleaned up), older than the export, or made from
    another export (a run renamed since: its comment names the export it holds, never a local path)."""
    from localsft.export.pipeline import CHECK_FILE

    target = served_files.downloads_dir() / f"{name}.zip"
    stamp, source = folder / CHECK_FILE, f"{folder.parent.parent.name}/{folder.name}".encode()
    if target.exists() and stamp.exists() and target.stat().st_mtime >= stamp.stat().st_mtime:
        with contextlib.suppress(OSError, zipfile.BadZipFile), zipfile.ZipFile(target) as made:
            if made.comment == source:
                return target
    shutil.make_archive(str(target.with_suffix("")), "zip", root_dir=folder)
    with zipfile.ZipFile(target, "a") as made:
        made.comment = source
    return served_files.keep(target)


def _file_safe(name: str) -> str:
    return re.sub(r"[^\w .()+-]+", "-", name).strip(" .-")


def download_stem(run_dir: Path) -> str:
    """What the run's downloads are called: its friendly name made safe for a file name ("Spring/Summer"
    -> "Spring-Summer"), or its folder name when another run's name reads the same that way (one run's
    zip must never stand in for another's)."""
    stem = _file_safe(display_name(run_dir)) or run_dir.name
    for other in paths.runs_dir().iterdir() if stem != run_dir.name else ():
        if other.name != run_dir.name and stem.casefold() in (other.name.casefold(),
                                                               _file_safe(display_name(other)).casefold()):
            return run_dir.name
    return stem


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{max(1, size // 1024)} KB"


def finished_exports(run: str | None) -> tuple[list[str], str]:
    """Every finished export of the run (each format's latest), as downloads and a list with sizes."""
    from localsft.export.pipeline import CHECK_FILE

    if not run:
        return [], ""
    run_dir = jobs.find_run(run).path
    folder = run_dir / "exports"
    done = sorted(p for p in folder.iterdir() if (p / CHECK_FILE).exists()) if folder.is_dir() else []
    stem = download_stem(run_dir)
    zips = [zip_folder(p, f"{stem}-{p.name}") for p in done]
    if not zips:
        return [], "No exports of this run yet."
    rows = "".join(f"<tr><td>{html.escape(FORMAT_HELP.get(p.name, p.name))}</td><td>{_size(z)}</td>"
                   f"<td>{time.strftime('%Y-%m-%d %H:%M', time.localtime((p / CHECK_FILE).stat().st_mtime))}</td></tr>"
                   for p, z in zip(done, zips))
    return [str(z) for z in zips], ('<table id="export-list"><tr><th>export</th><th>download size</th>'
                                    f"<th>written</th></tr>{rows}</table>")


@plain_errors
def refresh(selected: str | None):
    """The runs list (the choice kept) and that run's finished exports, each time the tab opens: a run
    chosen as the page loads never fires the dropdown's change, so its exports would not be listed."""
    runs = run_dropdown(selected)
    return (runs, *finished_exports(runs["value"]))


@plain_errors
def export(run: str | None, formats: list[str], quantize: str, progress=gr.Progress()):
    """Export each chosen format; returns every finished export (downloads, list) and how to use the new ones."""
    from localsft.export import export_run

    if not run:
        raise UserError("Choose a trained run first.")
    if not formats:
        raise UserError("Tick at least one format.")
    bits = None if quantize in (None, "", "none") else int(quantize)
    folder = jobs.find_run(run).path
    notes = []
    for n, fmt in enumerate(formats):
        progress(n / len(formats), desc=f"Exporting {fmt}…")
        for result in export_run(folder, fmt, quantize=bits if fmt in ("mlx", "gguf") else None,
                                 on_progress=lambda msg: progress(n / len(formats), desc=msg)):
            notes.append(f"### {result.fmt}\n{result.check.summary()}\n\n{result.usage}")
    return (*finished_exports(run), "\n\n".join(notes))


@plain_errors
def push(run: str | None, fmt: str, repo_id: str, token: str, private: bool, progress=gr.Progress()):
    """Push one export (made first if missing); the token field is cleared afterwards, never saved."""
    from localsft.export.push import push_run

    if not run:
        raise UserError("Choose a trained run first.")
    folder = jobs.find_run(run).path
    result = push_run(folder, (repo_id or "").strip(), fmt=fmt, private=private,
                      on_progress=lambda msg: progress(0.5, desc=msg), token=(token or "").strip() or None)
    return "", f"Pushed {len(result.files)} files to [{repo_id}]({result.repo_url})."


def build() -> SimpleNamespace:
    from localsft.export import FORMATS
    from localsft.export.push import PUSHABLE

    with gr.Tab("Export", id="export"):
        with gr.Row():
            run = gr.Dropdown(label="Run", choices=finished_run_choices(), elem_id="export-run", scale=2)
            formats = gr.CheckboxGroup([(FORMAT_HELP.get(f, f), f) for f in FORMATS], value=["peft"],
                                       label="Formats", elem_id="export-formats", scale=3)
            quantize = gr.Dropdown(["none", "8", "4"], value="none", label="Smaller file (bits per weight; mlx: 4 or 8, gguf: 8)", scale=1)
        export_btn = gr.Button("Export", variant="primary", elem_id="export-go")
        listing = gr.HTML(elem_id="export-listing")
        files = gr.File(label="Downloads (every finished export of this run)", file_count="multiple",
                        interactive=False, elem_id="export-files")
        notes = gr.Markdown(elem_id="export-notes")
        with gr.Accordion("Push to the Hugging Face Hub", open=False):
            with gr.Row():
                push_fmt = gr.Dropdown(list(PUSHABLE), value="adapter", label="Format")
                repo = gr.Textbox(label="Repository", placeholder="your-name/my-tuned-model")
                private = gr.Checkbox(label="Private", value=True)
            token = gr.Textbox(label="Hugging Face token (used for this push only, never saved; "
                                     "leave empty to use HF_TOKEN or `hf auth login`)", type="password")
            push_btn = gr.Button("Push")
            push_note = gr.Markdown()

    export_btn.click(export, [run, formats, quantize], [files, listing, notes])
    run.change(plain_errors(finished_exports), run, [files, listing])
    push_btn.click(push, [run, push_fmt, repo, token, private], [token, push_note])
    return SimpleNamespace(run=run, refresh=refresh, shown=[run, files, listing], open=open)
