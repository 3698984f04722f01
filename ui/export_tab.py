"""Export: write a run's tuned model in the chosen formats (each one checked), download it, push it to the Hub.

The Hugging Face token is typed into a password field, used for one push, and then
cleared: it is never saved or logged.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from localsft import jobs
from localsft.errors import UserError
from ui.common import finished_run_choices, plain_errors

FORMAT_HELP = {"adapter": "adapter: the small LoRA file for MLX (mlx_lm --adapter-path)",
               "peft": "peft: the adapter for Hugging Face PEFT / transformers",
               "mlx": "mlx: a complete merged MLX model",
               "hf": "hf: a complete merged Hugging Face model (safetensors)",
               "gguf": "gguf: one file for Ollama, LM Studio, llama.cpp"}


def refresh(selected: str | None):
    names = finished_run_choices()
    return gr.update(choices=names, value=selected if selected in names else (names[0] if names else None))


def open(name: str | None):  # noqa: A001  (the Runs tab's "Open in Export")
    return refresh(name), gr.Tabs(selected="export")


def zip_folder(folder: Path) -> Path:
    """One download per export: the folder as a .zip beside it."""
    return Path(shutil.make_archive(str(folder), "zip", root_dir=folder))


@plain_errors
def export(run: str | None, formats: list[str], quantize: str, progress=gr.Progress()):
    """Export each chosen format; returns the download files and how to use them."""
    from localsft.export import export_run

    if not run:
        raise UserError("Choose a trained run first.")
    if not formats:
        raise UserError("Tick at least one format.")
    bits = None if quantize in (None, "", "none") else int(quantize)
    folder = jobs.find_run(run).path
    downloads, notes = [], []
    for n, fmt in enumerate(formats):
        progress(n / len(formats), desc=f"Exporting {fmt}…")
        for result in export_run(folder, fmt, quantize=bits if fmt in ("mlx", "gguf") else None,
                                 on_progress=lambda msg: progress(n / len(formats), desc=msg)):
            downloads.append(str(zip_folder(result.path)))
            notes.append(f"### {result.fmt}\n{result.check.summary()}\n\n{result.usage}")
    return downloads, "\n\n".join(notes)


def _push_folder(folder: Path, repo_id: str, token: str, private: bool) -> str:
    """Upload an export folder to a Hub repo (created if needed); returns its address."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload from localsft")
    return f"https://huggingface.co/{repo_id}"


@plain_errors
def push(run: str | None, fmt: str, repo_id: str, token: str, private: bool, progress=gr.Progress()):
    """Push one exported format; the token is used for this call only and the field is cleared."""
    if not run:
        raise UserError("Choose a trained run first.")
    folder = jobs.find_run(run).exports_dir(fmt)
    if not folder.is_dir():
        raise UserError(f"Export the {fmt} format first; there is nothing in {folder}.")
    if "/" not in (repo_id or ""):
        raise UserError("The Hub repository must look like your-name/model-name.")
    if not (token or "").strip():
        raise UserError("Paste a Hugging Face token with write access (it is not saved).")
    progress(0.2, desc=f"Uploading to {repo_id}…")
    try:
        url = _push_folder(folder, repo_id.strip(), token.strip(), private)
    except Exception as err:  # network and permission errors, without echoing the request (or the token)
        raise UserError(f"The upload to {repo_id} failed: {type(err).__name__}. Check the token's write "
                        f"access and your internet connection.") from None
    return "", f"Pushed to [{repo_id}]({url})."


def build() -> SimpleNamespace:
    from localsft.export import FORMATS

    with gr.Tab("Export", id="export"):
        with gr.Row():
            run = gr.Dropdown(label="Run", choices=finished_run_choices(), elem_id="export-run", scale=2)
            formats = gr.CheckboxGroup([(FORMAT_HELP.get(f, f), f) for f in FORMATS], value=["peft"],
                                       label="Formats", elem_id="export-formats", scale=3)
            quantize = gr.Dropdown(["none", "8", "4"], value="none", label="Quantize (mlx: 4 or 8, gguf: 8)", scale=1)
        export_btn = gr.Button("Export", variant="primary", elem_id="export-go")
        files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="export-files")
        notes = gr.Markdown()
        with gr.Accordion("Push to the Hugging Face Hub", open=False):
            with gr.Row():
                push_fmt = gr.Dropdown(list(FORMATS), value="peft", label="Format")
                repo = gr.Textbox(label="Repository", placeholder="your-name/my-tuned-model")
                private = gr.Checkbox(label="Private", value=True)
            token = gr.Textbox(label="Hugging Face token (used once, never saved)", type="password")
            push_btn = gr.Button("Push")
            push_note = gr.Markdown()

    export_btn.click(export, [run, formats, quantize], [files, notes])
    push_btn.click(push, [run, push_fmt, repo, token, private], [token, push_note])
    return SimpleNamespace(run=run, refresh=refresh, open=open)
