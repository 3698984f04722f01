"""Training jobs (localsft.runs.jobs) and run status (localsft.runs.status): progress from the
event log, the runs list, liveness from the trainer's locks.

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
from localsft.errors import UserError
from localsft.runs import jobs
from localsft.runs.status import read_progress
from localsft.train.config import TrainConfig


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
    p = read_progress(folder, alive=True)
    assert (p.status, p.step, p.steps, p.eta_s) == ("running", 2, 10, 40.0)
    assert p.losses == [(1, 2.5), (2, 2.1)] and p.val_losses == [(2, 2.3)]
    assert p.samples[0]["answer"] == "hello" and p.fraction == pytest.approx(0.2)


def test_a_run_that_ended_without_a_final_event_is_interrupted():
    folder = write_run("r2", [STARTED, {"type": "step", "step": 1, "steps": 10, "loss": 2.5, "eta_s": 9}])
    p = read_progress(folder)  # nothing holds its lock: nothing runs it
    assert p.status == "interrupted" and "ended without finishing" in p.message
    assert read_progress(folder, alive=True).status == "running"


def test_final_events_set_the_status():
    folder = write_run("r3", [STARTED, {"type": "stopped", "step": 4, "checkpoint": "x"}])
    assert read_progress(folder, alive=False).status == "stopped"
    folder = write_run("r4", [STARTED, {"type": "failed", "reason": "The loss became nan.", "step": 3}])
    p = read_progress(folder, alive=False)
    assert (p.status, p.message, p.done) == ("failed", "The loss became nan.", True)
    folder = write_run("r5", [STARTED, {"type": "early_stopped", "step": 4, "best_step": 2, "best_val_loss": 1.0},
                              {"type": "finished", "step": 4, "best_val_loss": 1.0, "adapters": "", "run_dir": "",
                               "seconds": 1}])
    p = read_progress(folder, alive=False)
    assert (p.status, p.sentence) == ("finished", "Finished early: the validation loss stopped improving.")


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


HOLDER = """
import sys, time
from localsft.runs.lock import lock_run, lock_training
locks = [lock_run(sys.argv[1], "training"), lock_training(sys.argv[1])]
print("locked", flush=True)
time.sleep(60)
"""


def hold_like_a_trainer(folder):
    """A real process that holds the locks a training holds (a CLI `localsft train`, say)."""
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_training_of_another_process_is_the_job_until_it_is_killed():
    folder = write_run("busy", [{**STARTED, "time": time.time()},
                                {"type": "step", "step": 3, "steps": 10, "loss": 2.0, "eta_s": 9}])
    trainer = hold_like_a_trainer(folder)
    try:
        assert jobs.current_job().run_dir == folder.resolve()  # what a reload or second tab finds
        assert jobs.current_job().pid == trainer.pid
        assert read_progress(folder).status == "running"
        assert jobs.list_runs()[0].label == "running (step 3 of 10)"
        with pytest.raises(UserError, match="already running"):
            jobs.start_training(TrainConfig(data="data.csv"))
        with pytest.raises(UserError, match="being trained right now"):
            jobs.delete_run("busy")
        with pytest.raises(UserError, match="already running"):
            jobs.resume_training(folder)
    finally:
        trainer.kill()  # SIGKILL: no ending is logged; the OS drops the locks
        trainer.wait()
    assert jobs.current_job() is None
    assert read_progress(folder).status == "interrupted"
    assert [r.status for r in jobs.list_runs()] == ["interrupted"]
    assert jobs.delete_run("busy") == folder and not folder.exists()


def test_train_command_is_the_cli():
    run_dir = paths.runs_dir() / "r"
    cmd = jobs.train_command(run_dir, config_file=run_dir / "config.yaml")
    assert cmd[:4] == [sys.executable, "-m", "localsft", "train"]
    assert cmd[4:] == ["--config", str(run_dir / "config.yaml"), "--out", str(run_dir)]
    assert jobs.train_command(run_dir, resume=True)[4:] == ["--resume", str(run_dir)]
