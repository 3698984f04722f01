"""Training jobs (localsft.runs.jobs): progress from the event log, the runs list, the job file.

The end-to-end rules (one training at a time, re-attach, stop) run the real
`localsft train` child on a tiny model in tests/test_ui_training.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from localsft import paths
from localsft.runs import jobs
from localsft.errors import UserError


def write_run(name: str, events: list[dict], config: str = "model: null\n"):
    folder = paths.runs_dir() / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config)
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


STARTED = {"type": "started", "steps": 10, "est_seconds": 50.0}


def test_progress_follows_the_event_log():
    folder = write_run("r1", [STARTED,
                              {"type": "step", "step": 1, "steps": 10, "loss": 2.5, "eta_s": 45.0, "tokens_per_s": 80},
                              {"type": "step", "step": 2, "steps": 10, "loss": 2.1, "eta_s": 40.0, "tokens_per_s": 82},
                              {"type": "eval", "step": 2, "val_loss": 2.3, "best_val_loss": 2.3, "improved": True},
                              {"type": "sample", "step": 2, "samples": [{"prompt": "hi", "answer": "hello"}]}])
    p = jobs.read_progress(folder, running=True)
    assert (p.status, p.step, p.steps, p.eta_s) == ("running", 2, 10, 40.0)
    assert p.losses == [(1, 2.5), (2, 2.1)] and p.val_losses == [(2, 2.3)]
    assert p.samples[0]["answer"] == "hello" and p.fraction == pytest.approx(0.2)


def test_a_run_that_ended_without_a_final_event_is_interrupted_or_failed():
    folder = write_run("r2", [STARTED, {"type": "step", "step": 1, "steps": 10, "loss": 2.5, "eta_s": 9}])
    p = jobs.read_progress(folder)  # no job file: nothing runs it
    assert p.status == "interrupted" and "ended without finishing" in p.message
    (folder / jobs.LOG_FILE).write_text("loading...\nerror: Model not found: nope.\n")
    p = jobs.read_progress(folder)
    assert (p.status, p.message) == ("failed", "Model not found: nope.")


def test_final_events_set_the_status():
    folder = write_run("r3", [STARTED, {"type": "stopped", "step": 4, "checkpoint": "x"}])
    assert jobs.read_progress(folder, running=False).status == "stopped"
    folder = write_run("r4", [STARTED, {"type": "failed", "reason": "The loss became nan.", "step": 3}])
    p = jobs.read_progress(folder, running=False)
    assert (p.status, p.message, p.done) == ("failed", "The loss became nan.", True)


def test_runs_list_and_delete():
    write_run("old", [{**STARTED, "time": time.time() - 3600},
                      {"type": "step", "step": 10, "steps": 10, "loss": 1.1, "eta_s": 0},
                      {"type": "eval", "step": 10, "val_loss": 1.25, "best_val_loss": 1.25, "improved": True},
                      {"type": "finished", "step": 10, "best_val_loss": 1.25, "adapters": "", "run_dir": "",
                       "seconds": 3}])
    write_run("new", [{**STARTED, "time": time.time()}], config="model: /some/where/tiny-llama\n")
    runs = jobs.list_runs()
    assert [r.name for r in runs] == ["new", "old"]
    assert (runs[0].model, runs[0].status) == ("tiny-llama", "interrupted")
    assert (runs[1].status, runs[1].best_val_loss, runs[1].step, runs[1].steps) == ("finished", 1.25, 10, 10)
    assert jobs.delete_run("old") == paths.runs_dir() / "old"
    assert [r.name for r in jobs.list_runs()] == ["new"]
    with pytest.raises(UserError, match="no run named"):
        jobs.delete_run("../models")


def test_job_file_of_a_dead_process_is_cleared():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (paths.home() / jobs.JOB_FILE).write_text(json.dumps({"pid": dead.pid, "run_dir": "/x", "started": 0}))
    assert jobs.current_job() is None
    assert not (paths.home() / jobs.JOB_FILE).exists()
    (paths.home() / jobs.JOB_FILE).write_text("{torn")
    assert jobs.current_job() is None


def test_a_live_job_blocks_a_second_start_and_deleting_its_run():
    folder = write_run("busy", [{**STARTED, "time": time.time()}])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (paths.home() / jobs.JOB_FILE).write_text(json.dumps({"pid": sleeper.pid, "run_dir": str(folder),
                                                              "started": 0}))
        assert jobs.current_job().run_dir == folder  # what a reload or second tab finds
        assert jobs.read_progress(folder).status == "running"
        with pytest.raises(UserError, match="already running"):
            jobs.start_training("data.csv")
        with pytest.raises(UserError, match="training right now"):
            jobs.delete_run("busy")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert jobs.current_job() is None


def test_train_command_is_the_cli():
    cmd = jobs.train_command("ex.csv", run_dir=paths.runs_dir() / "r", recipe="quick-test", model="m",
                             overrides=["iters=5"])
    assert cmd[:4] == [sys.executable, "-m", "localsft", "train"]
    assert cmd[4:] == ["--data", "ex.csv", "--out", str(paths.runs_dir() / "r"), "--recipe", "quick-test",
                       "--model", "m", "--set", "iters=5"]
    assert jobs.train_command(None, run_dir=paths.runs_dir() / "r", resume=True)[4:] == [
        "--resume", str(paths.runs_dir() / "r")]
    with pytest.raises(UserError, match="Data tab"):
        jobs.train_command(None, run_dir=None)
