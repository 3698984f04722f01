"""Fill jobs for the app: the real `localsft fill` child, its progress, Stop, and a resumed fill."""

from __future__ import annotations

import csv
import time

import pytest
from support.serve import finished_run, store_model

from localsft import paths
from localsft.errors import UserError
from localsft.fill import job as fill_job


def wait(predicate, seconds: float = 180):
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, f"timed out; log:\n{fill_job.log_file().read_text(errors='replace')}"
        time.sleep(0.02)


def rows(path):
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.reader(fh))


# The tiny model answers ~150 rows a second here: enough rows that Stop lands well before the end.
ROWS = 1200


@pytest.fixture
def inputs(localsft_home, tiny_model_dir):
    model = store_model(localsft_home, tiny_model_dir)
    finished_run(localsft_home, "shoes", model, seed=1)
    data = paths.uploads_dir() / "products.csv"
    with open(data, "w", newline="") as fh:
        csv.writer(fh).writerows([["prompt"]] + [[f"Write a tagline for shoe {i}."] for i in range(ROWS)])
    return data


def test_a_fill_runs_in_the_background_stops_keeps_its_rows_and_resumes(inputs):
    job = fill_job.start_fill("shoes", inputs, max_tokens=48)
    with pytest.raises(UserError, match="already running"):
        fill_job.start_fill("shoes", inputs)
    wait(lambda: (fill_job.fill_state() or {}).get("done", 0) >= 16)
    assert fill_job.fill_state()["status"] == "running" and fill_job.fill_state()["total"] == ROWS
    fill_job.stop_fill()
    wait(lambda: fill_job.fill_state()["status"] != "running")
    state = fill_job.fill_state()
    assert state["status"] == "stopped" and "rows answered so far" in state["message"]
    kept = rows(job.out)
    assert 16 <= len(kept) - 1 < ROWS and kept[0] == ["prompt", "answer"]
    fill_job.start_fill("shoes", inputs, max_tokens=48)  # the same file again: resumes
    wait(lambda: fill_job.fill_state()["status"] != "running")
    assert fill_job.fill_state()["status"] == "finished"
    done = rows(job.out)
    assert len(done) == ROWS + 1 and done[:len(kept)] == kept


def test_a_failing_fill_shows_its_reason(inputs):
    fill_job.start_fill("no-such-run", inputs)
    wait(lambda: fill_job.fill_state()["status"] != "running")
    state = fill_job.fill_state()
    assert state["status"] == "failed" and "No run or model called 'no-such-run'" in state["message"]
