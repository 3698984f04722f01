"""Training from the app, for real: `localsft train` in a child process on a tiny model.

One training at a time, re-attach from a new page, stop (a clean checkpoint), resume.
"""

from __future__ import annotations

import time

import pytest

from localsft import paths
from localsft.runs import jobs
from localsft.errors import UserError
from localsft_ui import train_tab


def wait_for(condition, timeout: float = 90.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def examples():
    path = paths.uploads_dir() / "examples.csv"
    path.write_text("prompt,response\n" + "".join(f"Write a tagline {i}.,Light fast yours {i}.\n" for i in range(40)))
    return path


@pytest.fixture
def stored_tiny(tiny_model_dir) -> str:
    """The tiny model added to the store: the app takes models by name, never by folder."""
    from localsft.models import add_model

    return add_model(str(tiny_model_dir), name="tiny").name


def test_one_training_at_a_time_reattach_stop_and_resume(examples, stored_tiny):
    advanced = (None, 5000, None, None, 64, "compile=false\neval_every=50\nbatch_tokens=256")
    run_dir, message = train_tab.start(str(examples), stored_tiny, "quick-test", *advanced, name="Spring run")
    try:
        assert "Started run **Spring run**" in message
        wait_for(lambda: jobs.read_progress(run_dir).losses, what="the first loss points")

        # A second Start (another tab, the CLI through the app) gets a plain message.
        with pytest.raises(UserError, match="already running"):
            jobs.start_training(str(examples), model=stored_tiny)

        # A new page knows nothing yet; its first poll finds the running job.
        jobs._children.clear()  # as if this were another app process
        followed, html, chart, _, start, stop, resume, _, note, *_ = train_tab.poll(None, None)
        assert followed == run_dir and 'data-status="running"' in html and 'class="point training"' in chart
        assert not start["interactive"] and stop["interactive"] and not resume["interactive"]
        assert "Training now" in note and "examples.csv" in note  # the running job's data, whatever is chosen

        assert "Stopping run" in train_tab.stop()
        wait_for(lambda: jobs.current_job() is None, what="the stop")
        progress = jobs.read_progress(run_dir)
        assert progress.status == "stopped" and 0 < progress.step < 5000
        stopped_at = progress.step
        _, html, _, _, start, stop, resume, message, *_ = train_tab.poll(run_dir, None)
        assert "Stopped" in html and message == ""  # "Stopping…" is replaced by the outcome
        assert start["interactive"] and not stop["interactive"] and resume["interactive"]

        resumed, message = train_tab.resume(run_dir)
        assert resumed == run_dir and "Resumed" in message
        wait_for(lambda: jobs.read_progress(run_dir).step > stopped_at, what="steps after the resume")
    finally:
        job = jobs.stop_training(force=True)
        if job:
            jobs.wait(job, 30)
    assert jobs.read_progress(run_dir).status == "stopped"


def test_a_failing_training_shows_its_reason(tiny_model_dir):
    bad = paths.uploads_dir() / "bad.csv"
    bad.write_text("prompt,response\n")
    job = jobs.start_training(str(bad), model=str(tiny_model_dir))
    assert jobs.wait(job, 60)
    progress = jobs.read_progress(job.run_dir)
    assert progress.status == "failed" and "no rows" in progress.message and "Traceback" not in progress.message


def test_the_plan_comes_from_the_dry_run(examples, stored_tiny):
    plan = train_tab.show_plan(str(examples), stored_tiny, "quick-test", 0, 20, 0, 0, 64, "compile=false")
    assert "20 steps" in plan and "MB" in plan
    assert plan.index("float32") > plan.index("<summary>Details</summary>")  # the precision is for experts
    assert not any(paths.runs_dir().iterdir())  # nothing is kept
