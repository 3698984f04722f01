"""The studio's feedback loop without a browser: correct, count, improve (a real child training),
and any two of base / parent / improved run side by side on one copy of the base weights."""

from __future__ import annotations

import random

import pytest
import yaml
from support.runs import make_run

from localsft import paths
from localsft.evaluation.abtest import make_pair
from localsft.feedback import collect, read_corrections
from localsft.inference.generate import SamplingSettings
from localsft.runs import jobs
from localsft.runs.status import read_progress
from localsft.runs.folder import RunFolder
from localsft_ui import compare_tab, feedback

PROMPT = [{"role": "user", "content": "Write a tagline for our shoes."}]
GREEDY = SamplingSettings(max_tokens=8, temperature=0.0)


@pytest.fixture
def family(tiny_model_dir):
    """A run in the store and a run improved from it (config.parent_run), different adapters."""
    parent = RunFolder(make_run(paths.runs_dir() / "parent", tiny_model_dir, seed=1))
    child = RunFolder(make_run(paths.runs_dir() / "child", tiny_model_dir, seed=2))
    config = yaml.safe_load(child.config_path.read_text())
    child.config_path.write_text(yaml.safe_dump({**config, "parent_run": str(parent.path.resolve())}))
    return parent, child


def _voted(run: str, session: dict, choice: str) -> None:
    session["pair"] = make_pair(PROMPT, "Shoes.", "Shoes that run. - The Acme team", random.Random(len(choice)))
    compare_tab.vote(choice, run, session)


def test_pickers_offer_base_this_run_its_parent_and_its_improvements(family):
    parent, child = family
    assert [v for _, v in feedback.side_choices("child")] == ["base", "child", "parent"]
    assert [v for _, v in feedback.side_choices("parent")] == ["base", "parent", "child"]
    assert "improves run **parent**" in feedback.parent_note("child") and feedback.parent_note("parent") == ""


def test_any_two_sides_answer_as_each_run_alone(family):
    """Left = parent, right = child, decoded as one batch: each pane answers as its run does alone."""
    from localsft.inference.side_by_side import answer_sides, open_compare

    parent, child = family
    session = {"chat": open_compare(child)}
    chat = feedback.panes(session, "child", "parent", "child")
    assert len(set(chat.slots.values())) == 2 and 0 not in chat.slots.values()
    together = {side: "" for side in chat.sides}
    for side, piece in chat.send("Write a tagline for our shoes.", GREEDY):
        together[side] += piece
    alone = {run: answer_sides(open_compare(RunFolder.open(paths.runs_dir() / run)).switchable, PROMPT, GREEDY)["tuned"]
             for run in ("parent", "child")}
    assert together == {"left": alone["parent"], "right": alone["child"]}
    assert alone["parent"] != alone["child"]  # (otherwise the test could not tell the panes apart)
    with pytest.raises(Exception, match="Choose what to show"):
        feedback.panes(session, "child", "../elsewhere", "child")

    # The left answer (the parent's), corrected from the Compare panes, is stored in the open run.
    original, session, _ = feedback.edit_pane("left", session)
    assert original == alone["parent"]
    feedback.save_example("child", session, "Shoes that run further. - The Acme team")
    row = read_corrections(child)[0]
    assert (row["prompt"], row["original"], row["side"], row["shown"]) == (PROMPT, original, "parent", "compare")


def test_corrections_are_stored_with_where_they_were_shown_and_unlock_improve(family):
    session = {"pair": None}
    button, reason = feedback.improve_button("parent")
    assert button["interactive"] is False and "at least 4" in reason and "has 0" in reason
    with pytest.raises(Exception, match="Press Edit"):
        feedback.save_example("parent", session, "anything")
    for choice in ("A", "B", "A"):
        _voted("parent", session, choice)
    edited, session, _ = feedback.edit_blind("B", session)  # the pair just judged can still be corrected
    with pytest.raises(Exception, match="same as the original"):
        feedback.save_example("parent", session, edited)
    message, session = feedback.save_example("parent", session, "Run further. - The Acme team")
    assert "1 correction" in message
    row = read_corrections(paths.runs_dir() / "parent")[0]
    assert row["shown"] == "blind A/B" and row["edited"] == "Run further. - The Acme team"
    assert row["prompt"] == PROMPT and row["side"] in ("base", "tuned")
    button, reason = feedback.improve_button("parent")
    assert button["value"] == "Improve with my feedback (3 votes, 1 correction)" and button["interactive"] is True
    assert len(collect(paths.runs_dir() / "parent").pairs) == 4


def test_improve_trains_a_new_run_that_records_its_parent(family):
    parent, _ = family
    session = {"pair": None}
    for choice in ("A", "B", "A", "B", "A"):
        _voted("parent", session, choice)
    run_dir, message, _ = feedback.improve("parent")
    job = jobs.current_job()
    assert job is not None and str(job.run_dir) == run_dir and "new run" in message
    button, reason = feedback.improve_button("parent")
    assert button["interactive"] is False and "A training is running" in reason
    assert jobs.wait(job, timeout=300), (paths.runs_dir() / run_dir / jobs.LOG_FILE).read_text()[-2000:]
    new = RunFolder.open(run_dir)
    assert new.config_dict()["parent_run"] == str(parent.path.resolve())
    assert read_progress(run_dir).status in ("finished", "early_stopped"), (new.path / jobs.LOG_FILE).read_text()
    assert (new.best_adapter() / "adapters.safetensors").exists()
    assert new.path.name in [v for _, v in feedback.side_choices("parent")]


def test_runs_of_another_base_model_are_refused_side_by_side(family, tiny_model_dir, tmp_path):
    from localsft.inference.side_by_side import open_compare, side_slots

    _, child = family
    other = RunFolder(make_run(tmp_path / "other", tiny_model_dir, seed=3))
    other.config_path.write_text(yaml.safe_dump({"model": "SmolLM2-135M-Instruct"}))
    switchable = open_compare(child).switchable
    with pytest.raises(Exception, match="trained on another base model"):
        side_slots(switchable, {"left": None, "right": other}, child.model_name())
    assert switchable.bank.switch.slots == 2  # nothing was attached
