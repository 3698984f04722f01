"""Helpers every tab uses: errors as plain sentences, the tokenizer cache, run choices."""

from __future__ import annotations

import functools
import inspect
from functools import lru_cache

import gradio as gr

from localsft.errors import UserError
from localsft.platform.threads import iterate_in_thread


# The library's messages name CLI flags; in the app they name the app's own controls.
APP_WORDS = [("Choose them with --input-col and --output-col", "Choose them with the Input column and Output "
              "column pickers"), ("--input-col", "the Input column picker"), ("--output-col", "the Output column picker"),
             ("--system-col", "the System column picker"), ("--set", "Advanced settings"), ("--data", "the Data tab"),
             ("--model", "the Model picker"), ("--recipe", "the Recipe picker")]


def app_words(message: str) -> str:
    """A library message with each CLI flag replaced by the app control that does the same."""
    for flag, control in APP_WORDS:
        message = message.replace(flag, control)
    return message


def _plain(err: Exception) -> gr.Error:
    if isinstance(err, UserError):
        return gr.Error(app_words(str(err)), print_exception=False)
    return gr.Error(f"Something went wrong: {type(err).__name__}: {err}".rstrip(": "), print_exception=False)


def plain_errors(fn):
    """Show a handler's failures as one plain sentence in the page, never a traceback."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:  # one thread for the whole stream: MLX graphs cannot hop threads
                yield from iterate_in_thread(lambda: fn(*args, **kwargs))
            except gr.Error:
                raise
            except Exception as err:
                raise _plain(err) from None
        return generator

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            raise _plain(err) from None
    return wrapper


@lru_cache(maxsize=2)
def tokenizer_for(model: str | None):
    """The model's tokenizer (cached: the data tab re-checks often)."""
    from localsft.models import load_tokenizer

    return load_tokenizer(model)


def run_label(run, job=None) -> str:
    """How the lists name a run: its friendly name, and "still training (step 12 of 30)" while it trains."""
    from localsft.runs import jobs
    from localsft.runs.names import display_name

    name = display_name(run.path)
    if job is not None and job.run_dir.resolve() == run.path.resolve():
        p = jobs.read_progress(run.path, running=True)
        return f"{name} (still training: step {p.step} of {p.steps})"
    return name


def finished_run_choices() -> list[tuple[str, str]]:
    """(label, folder name) of the runs that have an adapter to compare or export; a run that is
    still training is offered only under a label that says so."""
    from localsft.runs.jobs import current_job, list_runs

    job = current_job()
    return [(run_label(r, job), r.name) for r in list_runs() if (r.path / "adapters").is_dir()]


def run_dropdown(selected: str | None):
    """The runs dropdown of Compare / Export, refreshed, keeping the choice (else the newest run)."""
    choices = finished_run_choices()
    names = [name for _, name in choices]
    return gr.update(choices=choices, value=selected if selected in names else (names[0] if names else None))
