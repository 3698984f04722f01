"""What the Train tab shows about the followed run: status line, time left, chart, samples, buttons.

Everything is rebuilt from the run folder on each poll (every two seconds), so a reload or a
second tab shows the same thing, and no line outlives the state it describes.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from localsft.runs import jobs
from localsft.runs.folder import RunFolder
from localsft.runs.names import display_name
from localsft.runs.status import FINISHED, RESUMABLE, RUNNING, SENTENCES, STARTING, STOPPED, Progress
from localsft_ui import eta, loss_chart
from localsft_ui import verdict as verdict_ui



def run_data(run_dir: str | Path) -> str | None:
    """The examples file a run trains on, from its config (written before its process starts)."""
    try:
        return RunFolder(Path(run_dir)).config_dict().get("data")
    except (OSError, ValueError):
        return None


def data_note(data_file: str | None, job: jobs.Job | None, closing: bool = False,
              shown_run: str | Path | None = None) -> str:
    """Which examples: the running job's (whatever the Data tab holds), else the Data tab's choice.
    closing: the job has logged its end and its process is exiting. shown_run: the run shown below."""
    if job is not None:
        name = html.escape(display_name(job.run_dir))
        if closing:
            return f"**Finishing** run **{name}** (closing the training process)…"
        data = run_data(job.run_dir)
        shown = f"`{Path(data).name}`" if data else "its examples"
        return f"**Training now** on {shown} (run **{name}**)."
    if not data_file:
        data = run_data(shown_run) if shown_run else None
        below = f" (the run below trained on `{Path(data).name}`)" if data else ""
        return (f"**Examples:** none chosen yet{below}: pick them in the **Data** tab "
                f"(task recipes bring their own).")
    return f"**Examples:** `{Path(data_file).name}`"


def progress_html(p: Progress, events: list[dict]) -> str:
    words = SENTENCES.get(p.status, p.status)
    line = f"Step {p.step} of {p.steps}" if p.steps else ""
    if p.status in (RUNNING, STARTING):
        line += " · " + eta.estimate(events).describe()
    extra = []
    if p.tokens_per_s:
        extra.append(f"{p.tokens_per_s:.0f} tokens/s")
    if p.best_val_loss is not None:
        extra.append(f"best validation loss {p.best_val_loss:.4f}")
    details = f"<details><summary>Details</summary>{' · '.join(extra)}</details>" if extra else ""
    message = f"<div>{html.escape(p.message)}</div>" if p.message else ""
    if p.health and p.done:  # the check after training: loops, empty or identical answers, with the fix
        message += f'<div id="train-health" data-ok="{str(p.health_ok).lower()}">{html.escape(p.health)}</div>'
    return (f'<div id="train-progress" data-status="{p.status}"><b>{html.escape(display_name(p.run_dir))}</b>: '
            f'{words}<br><progress value="{p.step}" max="{max(p.steps, 1)}" style="width:100%"></progress>'
            f'<div id="train-eta">{line.removeprefix(" · ")}</div>{message}{details}</div>')


def chart_html(p: Progress) -> str:
    svg = loss_chart.chart_svg({"training": p.losses, "validation": p.val_losses}, p.steps)
    return f"{svg}<div style='opacity:.75'>{loss_chart.EXPLAIN}</div>" if svg else ""


def samples_html(p: Progress) -> str:
    """The latest sample answers, line breaks kept (an answer is shown as written)."""
    if not p.samples:
        return ""
    block = "white-space:pre-wrap;border-left:3px solid #ccc;padding:2px 8px;margin:4px 0"
    parts = [f"<b>Sample answers (step {p.step})</b>"]
    for s in p.samples:
        parts.append(f"<div class='sample'><div style='{block};opacity:.8'>{html.escape(s.get('prompt', ''))}</div>"
                     f"<div class='sample-answer' style='{block}'>{html.escape(s.get('answer', ''))}</div></div>")
    return "".join(parts)


def buttons(p: Progress | None, job: jobs.Job | None) -> tuple:
    """Start / Stop / Resume enabled only when that action makes sense now (none while a finished
    training's process is still exiting: it would refuse a Start for a moment)."""
    running = job is not None
    if running and p is not None and p.done:
        return (gr.update(interactive=False),) * 3
    resumable = not running and p is not None and p.status in RESUMABLE
    return (gr.update(interactive=not running), gr.update(interactive=running),
            gr.update(interactive=resumable))


def result_area(p: Progress | None, running: bool) -> tuple:
    """After training: the verdict card (if checked), "Check the result" and "Try it in Compare"."""
    done = p is not None and not running and p.status in (FINISHED, STOPPED)
    has_adapter = done and (p.run_dir / "adapters").is_dir()
    report = verdict_ui.read_eval(p.run_dir) if has_adapter else None
    return (verdict_ui.card_html(report), gr.update(visible=has_adapter), gr.update(visible=has_adapter))
