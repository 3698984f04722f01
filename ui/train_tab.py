"""Train: pick a model and a recipe, see the plan, start / stop / resume, follow the loss live.

Training runs in a child process (`localsft.runs.jobs`); this tab only reads its event log,
every two seconds, so a reload or a second tab shows the same running job.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from localsft import paths
from localsft.runs import jobs
from localsft.errors import UserError
from localsft_ui.common import plain_errors

POLL_SECONDS = 2.0
# The advanced fields, in the order `overrides` takes them: (label, decimals, element id).
ADVANCED = [("Epochs (0: the recipe's, else sized to the data)", None, None),
            ("Steps (0: from the epochs)", 0, "train-iters"),
            ("Learning rate (0: the recipe's, else sized to the data)", None, None),
            ("LoRA rank (0: the recipe's)", 0, None), ("Max tokens per example (0: the recipe's)", 0, None)]
STATUS_WORDS = {"waiting": "Starting (loading the model and the data)…", "running": "Training…",
                "finished": "Finished.", "early_stopped": "Finished early: held-out quality stopped improving "
                                                "(or the format held on every held-out answer).",
                "stopped": "Stopped. You can resume it later.", "failed": "Failed.",
                "interrupted": "Interrupted."}


# ---- choices ----------------------------------------------------------------------------------
def model_choices() -> list[str]:
    """Models in the store, the default model first (installed on first use)."""
    from localsft.models import list_models

    names = [m.name for m in list_models()]
    return [paths.DEFAULT_MODEL] + [n for n in names if n != paths.DEFAULT_MODEL]


def recipe_choices() -> list[tuple[str, str]]:
    """(label, name) of every recipe, with how long it takes here."""
    from localsft.train.recipes import list_recipes

    return [(f"{r.name} ({r.time_hint})", r.name) for r in list_recipes()]


def recipe_info(name: str | None) -> str:
    """What the recipe is for and how long it takes, in plain words."""
    from localsft.train.recipes import load_recipe

    if not name:
        return "The trainer's default settings."
    recipe = load_recipe(name)
    return f"**{recipe.name}**: {recipe.description}  \n_Time here: {recipe.time_hint}_"


def overrides(epochs, iters, learning_rate, lora_rank, max_seq_len, extra: str) -> list[str]:
    """The advanced settings as `key=value` items for `--set`; blank or 0 keeps the recipe's value
    (the browser sends an emptied number field as 0, and none of these can be 0)."""
    items = [f"{key}={value:g}" for key, value in (("epochs", epochs), ("iters", iters),
                                                  ("learning_rate", learning_rate), ("lora_rank", lora_rank),
                                                  ("max_seq_len", max_seq_len)) if value]
    for line in (extra or "").splitlines():
        if line.strip():
            if "=" not in line:
                raise UserError(f"Each extra setting must look like key=value; {line.strip()!r} does not.")
            items.append(line.strip())
    return items


# ---- handlers ---------------------------------------------------------------------------------
@plain_errors
def add_model(source: str, gguf_file: str | None, progress=gr.Progress()):
    """Add a model by Hub repo id, folder, or an uploaded .gguf file (copied into the home folder)."""
    from localsft.models import add_model as store_add

    if gguf_file:
        kept = paths.uploads_dir() / Path(gguf_file).name
        shutil.copyfile(gguf_file, kept)
        source = str(kept)
    source = (source or "").strip()
    if not source:
        raise UserError("Type a Hugging Face repo id (user/model) or a folder, or upload a .gguf file.")
    progress(0.1, desc=f"Adding {source} (downloading or converting can take a few minutes)…")
    info = store_add(source)
    return gr.update(choices=model_choices(), value=info.name), f"Added **{info.name}** ({info.architecture})."


def data_label(data_file: str | None) -> str:
    if not data_file:
        return "**Examples:** none chosen yet: pick them in the **Data** tab (task recipes bring their own)."
    return f"**Examples:** `{Path(data_file).name}`"


def training_data(data_file: str | None, recipe: str | None) -> str:
    """The examples chosen in the Data tab, else the task recipe's own example set."""
    if data_file:
        return data_file
    if recipe:
        from localsft.train.recipes import load_recipe

        data = load_recipe(recipe).train_config().data
        if data:
            return data
    raise UserError("Choose the examples to train on first (Data tab), or pick a task recipe that has its own.")


@plain_errors
def show_plan(data_file, model, recipe, *advanced, progress=gr.Progress()):
    data = training_data(data_file, recipe)
    progress(0.2, desc="Loading the model and measuring this machine's speed…")
    return "```\n" + jobs.dry_run(data, recipe=recipe, model=model, overrides=overrides(*advanced)) + "\n```"


@plain_errors
def start(data_file, model, recipe, *advanced):
    data = training_data(data_file, recipe)
    job = jobs.start_training(data, recipe=recipe or None, model=model, overrides=overrides(*advanced))
    return str(job.run_dir), f"Started run **{job.name}**."


@plain_errors
def stop():
    job = jobs.stop_training()
    if job is None:
        raise UserError("No training is running.")
    return f"Stopping run **{job.name}** after the current step…"


@plain_errors
def resume(run_dir: str | None):
    if not run_dir:
        raise UserError("There is no run to resume yet: start one, or open one from the Runs tab.")
    job = jobs.start_training(run_dir=run_dir, resume=True)
    return str(job.run_dir), f"Resuming run **{job.name}**."


# ---- rendering the event log ------------------------------------------------------------------
def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_html(p: jobs.Progress) -> str:
    words = STATUS_WORDS.get(p.status, p.status)
    detail = f"Step {p.step} of {p.steps}" if p.steps else ""
    if p.status == "running":
        detail += f" · about {_duration(p.eta_s)} left"
        if p.tokens_per_s:
            detail += f" · {p.tokens_per_s:.0f} tokens/s"
    if p.best_val_loss is not None:
        detail += f" · best validation loss {p.best_val_loss:.4f}"
    detail = detail.removeprefix(" · ")
    message = f"<div>{html.escape(p.message)}</div>" if p.message else ""
    if p.health and p.done:  # the check after training: loops, empty or identical answers, with the fix
        message += f'<div id="train-health" data-ok="{str(p.health_ok).lower()}">{html.escape(p.health)}</div>'
    return (f'<div id="train-progress" data-status="{p.status}"><b>{html.escape(p.run_dir.name)}</b>: '
            f'{words}<br><progress value="{p.step}" max="{max(p.steps, 1)}" style="width:100%"></progress>'
            f"<div>{detail}</div>{message}</div>")


def loss_frame(p: jobs.Progress) -> pd.DataFrame | None:
    """Training and validation loss by step; None before the first point (Gradio 6.31's line
    plot draws no lines after it was once given an empty table)."""
    rows = [(s, v, "training") for s, v in p.losses] + [(s, v, "validation") for s, v in p.val_losses]
    return pd.DataFrame(rows, columns=["step", "loss", "series"]) if rows else None


def samples_markdown(p: jobs.Progress) -> str:
    if not p.samples:
        return ""
    parts = [f"**Sample answers (step {p.step})**"]
    for s in p.samples:
        parts.append(f"> {s.get('prompt', '')}\n\n{s.get('answer', '')}")
    return "\n\n".join(parts)


def poll(run_dir: str | None):
    """The followed run's progress; a running job (from any tab) takes over, which is the re-attach."""
    job = jobs.current_job()
    if job is not None:
        run_dir = str(job.run_dir)
    if not run_dir or not Path(run_dir).is_dir():
        return None, "", None, ""
    p = jobs.read_progress(run_dir, running=job is not None)
    return run_dir, progress_html(p), loss_frame(p), samples_markdown(p)


def attach(run_dir: str | None):
    """A page opens (or reloads): follow the running job, else show the latest run."""
    if run_dir is None and jobs.current_job() is None:
        runs = [p for p in paths.runs_dir().iterdir() if (p / jobs.LOG_FILE).exists()]
        run_dir = str(max(runs, key=lambda p: p.stat().st_mtime)) if runs else None
    return poll(run_dir)


def build(data_file: gr.State) -> SimpleNamespace:
    with gr.Tab("Train", id="train"):
        data_note = gr.Markdown(data_label(None))
        with gr.Row():
            with gr.Column():
                model = gr.Dropdown(label="Model", choices=model_choices(), value=paths.DEFAULT_MODEL,
                                    elem_id="train-model")
                with gr.Accordion("Add a model", open=False):
                    source = gr.Textbox(label="Hugging Face repo id or folder",
                                        placeholder="HuggingFaceTB/SmolLM2-360M-Instruct")
                    gguf = gr.File(label="…or a .gguf file", file_types=[".gguf"], type="filepath")
                    add_btn = gr.Button("Add model")
                    add_note = gr.Markdown()
            with gr.Column():
                choices = recipe_choices()
                recipe = gr.Dropdown(label="Recipe", choices=choices, value=choices[0][1] if choices else None,
                                     elem_id="train-recipe")
                recipe_note = gr.Markdown(recipe_info(choices[0][1] if choices else None))
        with gr.Accordion("Advanced settings", open=False):
            with gr.Row():
                advanced = [gr.Number(label=label, value=None, precision=digits, elem_id=elem_id)
                            for label, digits, elem_id in ADVANCED]
            advanced.append(gr.Textbox(label="More settings, one key=value per line", lines=3,
                                       elem_id="train-extra"))
        with gr.Row():
            plan_btn = gr.Button("Show the plan")
            start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop")
            resume_btn = gr.Button("Resume")
        message = gr.Markdown(elem_id="train-message")
        plan = gr.Markdown()
        status = gr.HTML(elem_id="train-status")
        chart = gr.LinePlot(None, x="step", y="loss", color="series",
                            title="Loss", elem_id="loss-chart", height=300)
        samples = gr.Markdown(elem_id="train-samples")
        run_dir = gr.State(None)
        timer = gr.Timer(POLL_SECONDS)

    inputs = [data_file, model, recipe, *advanced]
    data_file.change(data_label, data_file, data_note)
    recipe.change(plain_errors(recipe_info), recipe, recipe_note)
    add_btn.click(add_model, [source, gguf], [model, add_note])
    plan_btn.click(show_plan, inputs, plan)
    start_btn.click(start, inputs, [run_dir, message])
    stop_btn.click(stop, None, message)
    resume_btn.click(resume, run_dir, [run_dir, message])
    outputs = [run_dir, status, chart, samples]
    timer.tick(poll, run_dir, outputs, show_progress="hidden")
    return SimpleNamespace(model=model, run_dir=run_dir, outputs=outputs, attach=attach)
