"""Train: pick a model and a recipe, see the plan, start / stop / resume, follow the loss live.

Training runs in a child process (`localsft.runs.jobs`); this tab only reads its event log,
every two seconds, so a reload or a second tab shows the same running job.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from localsft import paths
from localsft.errors import UserError
from localsft.runs import jobs
from localsft.runs.folder import JOB_LOG, RunFolder
from localsft.runs.names import display_name
from localsft.runs.status import read_progress
from localsft_ui import browser_input, served_files, settings_form, train_status
from localsft_ui import verdict as verdict_ui
from localsft_ui.common import plain_errors

POLL_SECONDS = 2.0
JARGON = ("rank", "lora", "block", "epoch", "fp32", "logits", "learning rate")  # kept behind "Details"


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

    if not browser_input.recipe_name(name):
        return "The trainer's default settings."
    recipe = load_recipe(name)
    purpose, _, how = recipe.description.partition(" - ")
    if not any(word in how.lower() for word in JARGON):
        return f"**{recipe.name}**: {recipe.description}  \n_Time here: {recipe.time_hint}_"
    return (f"**{recipe.name}**: {purpose}.  \n_Time here: {recipe.time_hint}_"
            f"\n\n<details><summary>Details</summary>{how}</details>")  # "LoRA rank 8 on the last 16 blocks"


def build_config(data_file: str | None, model: str | None, recipe: str | None, *settings):
    """The run's TrainConfig, built and checked here: the recipe's settings, the chosen examples and
    model, then the advanced settings filled in (UserError naming a bad one)."""
    from localsft.train.config import TrainConfig
    from localsft.train.recipes import load_recipe

    recipe = browser_input.recipe_name(recipe)  # names only, never files, from the browser
    base = load_recipe(recipe).train_config() if recipe else TrainConfig()
    return base.replace(data=training_data(data_file, recipe), model=browser_input.model_name(model),
                        **settings_form.changes(settings))


# ---- handlers ---------------------------------------------------------------------------------
@plain_errors
def add_model(source: str, gguf_file: str | None, progress=gr.Progress()):
    """Add a model by Hub repo id, folder, or an uploaded .gguf file (copied into the home folder)."""
    from localsft.models import add_model as store_add

    if gguf_file:  # Gradio passes only files uploaded to it here
        kept = paths.uploads_dir() / Path(gguf_file).name
        shutil.copyfile(gguf_file, kept)
        source = str(served_files.keep(kept))
    else:
        source = browser_input.hub_repo_id(source)
    progress(0.1, desc=f"Adding {source} (downloading or converting can take a few minutes)…")
    info = store_add(source)
    return gr.update(choices=model_choices(), value=info.name), f"Added **{info.name}** ({info.architecture})."


def training_data(data_file: str | None, recipe: str | None) -> str:
    """The examples chosen in the Data tab, else the task recipe's own example set."""
    if data_file:
        return str(browser_input.data_file(data_file))
    if browser_input.recipe_name(recipe):
        from localsft.train.recipes import load_recipe

        data = load_recipe(recipe).train_config().data
        if data:
            return str(browser_input.data_file(data))
    raise UserError("Choose the examples to train on first (Data tab), or pick a task recipe that has its own.")


@plain_errors
def show_plan(data_file, model, recipe, *settings, progress=gr.Progress()):
    config = build_config(data_file, model, recipe, *settings)
    progress(0.2, desc="Loading the model and measuring this machine's speed…")
    plan = jobs.dry_run(config)
    plain = [line for line in plan.splitlines() if line.strip() and not line.startswith("[")]  # "[model: fp32]"
    return "\n\n".join(plain) + f"\n\n<details><summary>Details</summary>\n\n```\n{plan}\n```\n</details>"


@plain_errors
def start(data_file, model, recipe, *settings, format_check: dict | None = None, name: str = ""):
    """Start a training; `name` (optional) is the run's friendly name, `format_check` the house style."""
    from localsft.runs.names import check_name, set_friendly_name

    check_name(name)  # before anything starts
    config = build_config(data_file, model, recipe, *settings)
    if format_check:  # the Data tab's house style becomes the run's format check
        config = config.replace(format_check=format_check)
    job = jobs.start_training(config)
    kept = set_friendly_name(job.run_dir, name) if (name or "").strip() else None
    return str(job.run_dir), f"Started run **{kept or job.name}** on `{Path(config.data).name}`."


def start_from_page(format_check: dict | None, *values):
    """The Start button: the house style (a state), the page's fields, then the run's name."""
    *fields, name = values
    return start(*fields, format_check=format_check, name=name)


@plain_errors
def stop():
    job = jobs.stop_training()
    if job is None:
        raise UserError("No training is running.")
    return f"Stopping run **{display_name(job.run_dir)}** after the current step…"


@plain_errors
def resume(run_dir: str | None):
    if not run_dir:
        raise UserError("There is no run to resume yet: start one, or open one from the Runs tab.")
    job = jobs.resume_training(browser_input.run_folder(run_dir))
    return str(job.run_dir), f"Resumed run **{display_name(job.run_dir)}**."


# ---- following the run ------------------------------------------------------------------------
def poll(run_dir: str | None, data_file: str | None = None):
    """The followed run's progress; a running job (from any tab) takes over, which is the re-attach."""
    job = jobs.current_job()
    if job is not None:
        run_dir = str(job.run_dir)
    note = train_status.data_note(data_file, job)
    if not run_dir or not Path(run_dir).is_dir():
        return (None, "", "", "", *train_status.buttons(None, job), gr.update(), note,
                *train_status.result_area(None, False))
    p = read_progress(run_dir)
    note = train_status.data_note(data_file, job, closing=p.done, shown_run=run_dir)
    events = RunFolder(Path(run_dir)).events()
    message = gr.update() if job is not None else ""  # "Stopping…" / "Started…" end with the run
    return (run_dir, train_status.progress_html(p, events), train_status.chart_html(p), train_status.samples_html(p),
            *train_status.buttons(p, job), message, note, *train_status.result_area(p, job is not None))


def attach(run_dir: str | None, data_file: str | None = None):
    """A page opens (or reloads): follow the running job, else show the latest run."""
    if run_dir is None and jobs.current_job() is None:
        runs = [p for p in paths.runs_dir().iterdir() if (p / JOB_LOG).exists()]
        run_dir = str(max(runs, key=lambda p: p.stat().st_mtime)) if runs else None
    return poll(run_dir, data_file)


@plain_errors
def check_result(run_dir: str | None, progress=gr.Progress()):
    """Evaluate the finished run on its examples kept aside; returns the verdict card."""
    from localsft.evaluation.evaluate import evaluate_run
    from localsft.inference.generate import SamplingSettings

    if not run_dir:
        raise UserError("Train a run first.")
    progress(0.05, desc="Loading the model…")
    stages = {"answers": "Both models answer the examples kept aside", "loss": "Scoring the answers",
              "probes": "Asking general-knowledge questions"}
    report = evaluate_run(RunFolder.open(run_dir), settings=SamplingSettings(max_tokens=128),
                          probe_limit=verdict_ui.PROBE_LIMIT,
                          on_event=lambda e: progress(e.done / max(e.total, 1),
                                                      desc=f"{stages.get(e.stage, e.stage)} ({e.done}/{e.total})…"))
    return verdict_ui.card_html(report.to_dict())


def build(data_file: gr.State, style: gr.State | None = None) -> SimpleNamespace:
    with gr.Tab("Train", id="train"):
        data_note = gr.Markdown(train_status.data_note(None, None), elem_id="train-data")
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
        with gr.Accordion("Advanced settings (blank: the recipe's value)", open=False):
            advanced = settings_form.build()
        run_name = gr.Textbox("", label="Name this run (optional; shown in every list, export and model card)",
                              placeholder="Spring taglines", elem_id="train-name")
        with gr.Row():
            plan_btn = gr.Button("Show the plan")
            start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop", interactive=False)
            resume_btn = gr.Button("Resume", elem_id="train-resume", interactive=False)
        message = gr.Markdown(elem_id="train-message")
        plan = gr.Markdown()
        status = gr.HTML(elem_id="train-status")
        with gr.Row():
            check_btn = gr.Button("Check the result", variant="primary", visible=False, elem_id="train-check")
            to_compare = gr.Button("Try it in Compare →", visible=False, elem_id="train-to-compare")
        card = gr.HTML(elem_id="train-verdict")
        chart = gr.HTML(elem_id="loss-chart")
        samples = gr.HTML(elem_id="train-samples")
        run_dir = gr.State(None)
        timer = gr.Timer(POLL_SECONDS)

    inputs = [data_file, model, recipe, *advanced]
    recipe.change(plain_errors(recipe_info), recipe, recipe_note)
    add_btn.click(add_model, [source, gguf], [model, add_note])
    plan_btn.click(show_plan, inputs, plan)
    style = style or gr.State(None)
    start_btn.click(start_from_page, [style, *inputs, run_name], [run_dir, message], api_name="start")
    stop_btn.click(stop, None, message)
    resume_btn.click(resume, run_dir, [run_dir, message])
    outputs = [run_dir, status, chart, samples, start_btn, stop_btn, resume_btn, message, data_note,
               card, check_btn, to_compare]
    timer.tick(poll, [run_dir, data_file], outputs, show_progress="hidden")
    data_file.change(poll, [run_dir, data_file], outputs, show_progress="hidden")
    check_btn.click(check_result, run_dir, card, concurrency_id="generate", concurrency_limit=1)
    settings = dict(zip((f.name for f in settings_form.offered()), advanced))
    return SimpleNamespace(model=model, run_dir=run_dir, data_file=data_file, outputs=outputs, attach=attach,
                           to_compare=to_compare, message=message, settings=settings)
