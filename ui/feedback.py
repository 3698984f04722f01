"""Compare's feedback loop: correct an answer ("Save as example"), improve the run with the user's
judgements (a new run, trained in the background like any training), and put any two of
base / parent run / improved run side by side.

Judgements go to the run folder through the library (localsft.feedback, localsft.evaluation.abtest);
the improvement is `localsft train --from RUN --preferences --out NEW` in a child (localsft.runs.jobs).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from localsft import paths
from localsft.errors import UserError
from localsft.runs import jobs
from localsft.runs.folder import RunFolder
from localsft.runs.names import display_name
from localsft_ui.common import plain_errors

BASE = "base"  # the picker value of the base model; every other value is a run folder name
PANES = ("left", "right")
MIN_PAIRS = 4  # localsft.train.preference.MIN_PAIRS (not imported: it loads the trainer)


# ---- which runs can sit side by side ------------------------------------------------------------
def parent_of(run: RunFolder) -> RunFolder | None:
    """The run this one was improved from (config.parent_run), when it is still in the runs store."""
    parent = run.config_dict().get("parent_run")
    if not parent:
        return None
    folder = paths.runs_dir() / Path(parent).name
    return RunFolder(folder) if folder.is_dir() and folder.resolve() == Path(parent).resolve() else None


def _has_adapter(run: RunFolder) -> bool:
    return (run.path / "adapters").is_dir()


def side_choices(name: str) -> list[tuple[str, str]]:
    """(label, value) for the two pickers: the base model, this run, its parent, the runs improved from it."""
    run = jobs.find_run(name)
    choices = [("Base model (before training)", BASE), (f"{display_name(run.path)} (this run)", run.name)]
    parent = parent_of(run)
    if parent is not None and _has_adapter(parent):
        choices.append((f"{display_name(parent.path)} (the run this one improves)", parent.name))
    for other in jobs.list_runs():
        folder = RunFolder(other.path)
        if _has_adapter(folder) and (p := parent_of(folder)) is not None and p.path.resolve() == run.path.resolve():
            choices.append((f"{display_name(other.path)} (improved from this run)", other.name))
    return choices


def pickers(name: str | None, left: str | None = None, right: str | None = None) -> tuple:
    """The Left and Right pickers of a run, keeping a choice still offered; by default the base
    model on the left and the run on the right."""
    if not name:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None)
    choices = side_choices(name)
    offered = {value for _, value in choices}
    return (gr.update(choices=choices, value=left if left in offered else BASE),
            gr.update(choices=choices, value=right if right in offered else name))


def refresh(name: str | None, left: str | None, right: str | None) -> tuple:
    """Compare shown again (page load, tab change): pickers (a new improved run appears) and the
    Improve button (counts; a training that has ended no longer blocks it)."""
    try:
        return pickers(name, left, right) + improve_button(name)
    except UserError:  # the run was deleted meanwhile
        return pickers(None) + improve_button(None)


@plain_errors
def pane_labels(name: str | None, left: str | None, right: str | None) -> tuple:
    labels = dict(side_choices(name)) if name else {}
    names = {value: label for label, value in labels.items()}
    return tuple(gr.update(label=names.get(value, "")) for value in (left, right))


def panes(session: dict, name: str, left: str | None, right: str | None):
    """The session's two-pane chat for the chosen sides, on the run's one copy of the base weights
    (each run's adapter in a slot of its own); a new choice starts empty panes."""
    from localsft.inference.side_by_side import CompareChat, side_slots

    allowed = {value for _, value in side_choices(name)}
    if left not in allowed or right not in allowed:  # values come from the browser: only offered ones
        raise UserError("Choose what to show on the left and on the right first.")
    run = jobs.find_run(name)
    sides = {pane: None if value == BASE else jobs.find_run(value) for pane, value in zip(PANES, (left, right))}
    slots = side_slots(session["chat"].switchable, sides, run.model_name())
    chat = session.get("panes")
    if chat is None or chat.slots != slots:
        chat = session["panes"] = CompareChat(session["chat"].switchable, slots=slots, system=run.instructions())
        session["shown"] = {pane: [] for pane in PANES}
        session["who"] = dict(zip(PANES, (left, right)))
    return chat


# ---- corrections ----------------------------------------------------------------------------------
@plain_errors
def edit_pane(pane: str, session: dict | None):
    """Put the last answer of a pane in the correction box, to be edited into the one wanted."""
    chat = (session or {}).get("panes")
    history = chat.history[pane] if chat else []
    if not history or history[-1]["role"] != "assistant":
        raise UserError("Ask both models something first; then edit the answer you want to correct.")
    session["editing"] = {"prompt": history[:-1], "original": history[-1]["content"],
                          "side": session["who"][pane], "shown": "compare"}
    return history[-1]["content"], session, ""


@plain_errors
def edit_blind(letter: str, session: dict | None):
    """Put answer A or B of the current (or just judged) blind pair in its correction box."""
    pair = (session or {}).get("pair") or (session or {}).get("judged")
    if pair is None:
        raise UserError("Ask for a new pair first; then edit the answer you want to correct.")
    answer, side = (pair.a, pair.a_side) if letter == "A" else (pair.b, pair.b_side)
    session["editing"] = {"prompt": pair.prompt, "original": answer, "side": side, "shown": "blind A/B"}
    return answer, session, ""


@plain_errors
def save_example(name: str | None, session: dict | None, edited: str | None):
    """Store the edited answer as an example (RUN/corrections.jsonl): a new training example and a
    preference pair (edited over original) for the next improvement."""
    from localsft.feedback import read_corrections, record_correction

    editing = (session or {}).get("editing")
    if not name or editing is None:
        raise UserError("Press Edit on an answer first, change it into the one you wanted, then save it.")
    run = jobs.find_run(name)
    record_correction(run, editing["prompt"], editing["original"], edited or "", side=editing["side"],
                      shown=editing["shown"])
    session["editing"] = None
    count = len(read_corrections(run))
    return f"Saved as example ({count} correction{'s' * (count != 1)} in this run).", session


# ---- improve ----------------------------------------------------------------------------------------
@plain_errors
def improve_button(name: str | None) -> tuple:
    """The Improve button with the run's counts, enabled only when there is enough to learn from,
    and the plain reason when it is not."""
    from localsft.feedback import collect

    if not name:
        return gr.update(value="Improve with my feedback", interactive=False), ""
    collected = collect(jobs.find_run(name))
    label = (f"Improve with my feedback ({collected.votes} vote{'s' * (collected.votes != 1)}, "
             f"{collected.corrections} correction{'s' * (collected.corrections != 1)})")
    pairs, running = len(collected.pairs), jobs.current_job()
    if pairs < MIN_PAIRS:
        reason = (f"Needs at least {MIN_PAIRS} judgements that pick a side (votes that are not ties, or saved "
                  f"examples); this run has {pairs}.")
    elif running is not None:
        reason = f"A training is running (run {display_name(running.run_dir)}); improve when it has finished."
    else:
        reason = (f"Trains a new run from this one on {pairs} preference pairs; it shows in the Train tab, "
                  "and this tab can then put it beside the base model or this run.")
    return gr.update(value=label, interactive=pairs >= MIN_PAIRS and running is None), reason


@plain_errors
def improve(name: str | None):
    """Start the improvement as a new run; the Train tab follows it like any training."""
    if not name:
        raise UserError("Choose a trained run first.")
    parent = jobs.find_run(name)
    job = jobs.start_improve(parent.path)
    message = f"Improving **{display_name(parent.path)}** with your feedback: new run **{job.name}**."
    return str(job.run_dir), message, gr.Tabs(selected="train")


def parent_note(name: str | None) -> str:
    """The Runs tab's line for a run made from feedback: which run it improves."""
    if not name:
        return ""
    try:
        run = jobs.find_run(name)
    except UserError:
        return ""
    parent_dir = run.config_dict().get("parent_run")
    if not parent_dir:
        return ""
    parent = parent_of(run)
    named = display_name(parent.path) if parent else Path(parent_dir).name
    return f"Made from feedback: improves run **{named}** with its votes and corrections."
