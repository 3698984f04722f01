"""The training loop on a tiny random model: learning, adapters, stop, resume, early stop, NaN guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten
import pytest

from localsft.errors import UserError
from localsft.runs.folder import RunFolder
from localsft.train import TrainConfig, train
from localsft.train.plan import check_fits
from support.training import adapter_weights, make_data, max_diff, tiny_config


def test_training_learns_and_writes_an_mlx_lm_adapter(tiny_model_dir, tmp_path):
    events = []
    config = tiny_config(tiny_model_dir, make_data(tmp_path / "data"), sample_prompts=1, sample_max_tokens=4)
    result = train(config, tmp_path / "run", on_event=events.append)
    assert result.status == "finished"
    kinds = [e.type for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished" and {"step", "eval", "sample", "checkpoint"} <= set(kinds)
    evals = [e.val_loss for e in events if e.type == "eval"]
    assert evals[-1] < evals[0] - 0.5
    logged = RunFolder(result.run_dir).events()
    assert [e["type"] for e in logged] == kinds and all("time" in e for e in logged)
    assert RunFolder(result.run_dir).model_name() == str(tiny_model_dir)

    from mlx_lm import load  # the adapter loads with mlx-lm itself
    best = RunFolder(result.run_dir).best_adapter()
    conf = json.loads((best / "adapter_config.json").read_text())
    assert conf["fine_tune_type"] == "lora" and conf["lora_parameters"]["rank"] == 8
    model, _ = load(str(tiny_model_dir), adapter_path=str(best))
    assert any(k.endswith("lora_b") for k in adapter_weights(result.run_dir, "best"))


def test_stop_request_saves_a_checkpoint_and_resume_finishes(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, make_data(tmp_path / "data"))
    steps = []
    result = train(config, tmp_path / "run", on_event=lambda e: steps.append(e) if e.type == "step" else None,
                   stop=lambda: len(steps) >= 3)
    assert result.status == "stopped" and result.step == 3
    run = RunFolder(tmp_path / "run")
    assert (run.checkpoints_dir / "step-3" / "state.json").exists()
    assert run.events()[-1]["type"] == "stopped"
    resumed = train(run_dir=run.path, resume=True)
    assert resumed.status == "finished" and resumed.step > 3


def test_stop_file_is_honoured(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, make_data(tmp_path / "data"))
    run_dir = tmp_path / "run"

    def on_event(event):
        if event.type == "step" and event.step == 2:
            (run_dir / "STOP").write_text("")

    assert train(config, run_dir, on_event=on_event).status == "stopped"
    assert not (run_dir / "STOP").exists()


_CHILD = """
import sys, localsft
from localsft.train import TrainConfig, train
config = TrainConfig.load(sys.argv[1])
train(config, sys.argv[2])
"""


def test_sigkill_and_resume_matches_an_uninterrupted_run(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, make_data(tmp_path / "data"), epochs=3, eval_every=3,
                         lora_dropout=0.1, grad_accumulation=2)
    reference = train(config, tmp_path / "reference")
    assert reference.status == "finished"

    config.save(tmp_path / "config.yaml")
    run_dir = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path / "config.yaml"), str(run_dir)],
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        deadline = time.time() + 120
        while not (run_dir / "checkpoints" / "step-6").exists():
            assert child.poll() is None and time.time() < deadline, "child ended before its second checkpoint"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert RunFolder(run_dir).events()[-1]["type"] != "finished"
    resumed = train(run_dir=run_dir, resume=True)
    assert resumed.status == "finished" and resumed.step == reference.step
    assert max_diff(adapter_weights(run_dir), adapter_weights(reference.run_dir)) < 1e-4


def test_early_stopping_keeps_the_best_adapter(tiny_model_dir, tmp_path):
    # validation answers start with another word than training ones: val loss rises as the model learns
    data = make_data(tmp_path / "data", valid_word="Nonsense")
    config = tiny_config(tiny_model_dir, data, epochs=6, eval_every=2, early_stopping_patience=2,
                         learning_rate=5e-3)
    events = []
    result = train(config, tmp_path / "run", on_event=events.append)
    assert result.status == "early_stopped"
    stopped = next(e for e in events if e.type == "early_stopped")
    evals = [e for e in events if e.type == "eval"]
    assert stopped.best_val_loss == min(e.val_loss for e in evals) or abs(
        stopped.best_val_loss - min(e.val_loss for e in evals)) < 1e-4
    assert result.step < config.epochs * 3
    assert max_diff(adapter_weights(result.run_dir, "best"), adapter_weights(result.run_dir, "last")) > 0


def test_nan_loss_fails_plainly_and_keeps_the_last_good_checkpoint(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, make_data(tmp_path / "data"), learning_rate=1e30, warmup_ratio=0.0,
                         eval_every=1)
    result = train(config, tmp_path / "run")
    assert result.status == "failed" and "loss became" in result.reason
    run = RunFolder(result.run_dir)
    assert run.events()[-1]["type"] == "failed"
    good = adapter_weights(run.path, "last")
    assert all(bool(mx.all(mx.isfinite(v)).item()) for v in good.values())


def test_a_run_that_cannot_fit_is_refused():
    with pytest.raises(UserError, match="memory"):
        check_fits(10**15)


def test_resume_of_a_run_killed_before_its_data_was_prepared(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tiny_config(tiny_model_dir, make_data(tmp_path / "data"), epochs=1).save(run_dir / "config.yaml")
    assert train(run_dir=run_dir, resume=True).status == "finished"


def test_the_plans_timed_call_is_the_first_training_step(tiny_model_dir, tmp_path):
    """The plan times one call of the training step; a run keeps that call as its first step
    (the same loss and weights as computing it again) instead of paying for the step twice."""
    from localsft.train import events as ev
    from localsft.train.loop import _Trainer

    config = tiny_config(tiny_model_dir, make_data(tmp_path / "data"))
    results = []
    for reuse in (True, False):
        run = RunFolder(tmp_path / f"run-{reuse}")
        run.path.mkdir()
        config.save(run.config_path)
        trainer = _Trainer(config, run, ev.EventLog(None, None), None, False, None)
        calls = []
        micro = trainer.micro
        trainer.micro = lambda *args: calls.append(1) or micro(*args)
        trainer._emit_plan(measure_next_step=reuse)
        planned = len(calls)
        loss, tokens = trainer._train_step()
        trainer._train_step()  # the second step is computed as usual
        results.append((loss, tokens, len(calls) - planned, dict(tree_flatten(trainer.model.trainable_parameters()))))
    (loss, tokens, stepped, weights), (loss_again, tokens_again, stepped_again, weights_again) = results
    assert stepped == 1 and stepped_again == 2  # the first step was the plan's call
    assert loss == pytest.approx(loss_again, rel=1e-6) and tokens == tokens_again
    assert max_diff(weights, weights_again) < 1e-6


def test_small_first_steps_then_the_sized_batch_and_an_exact_resume_between(tiny_model_dir, tmp_path):
    """small_steps: the first steps train on about 2 examples each, then the configured batch; a
    run stopped during those steps resumes to the same adapter as a run never stopped."""
    data = make_data(tmp_path / "data")
    config = tiny_config(tiny_model_dir, data, small_steps=4, epochs=1)
    events = []
    whole = train(config, tmp_path / "whole", on_event=events.append)
    steps = [e for e in events if e.type == "step"]
    started = next(e for e in events if e.type == "started")
    tokens = np.diff([0] + [e.trained_tokens for e in steps])
    assert whole.status == "finished" and started.steps == len(steps) > 4
    assert tokens[:4].mean() < 0.7 * tokens[4:].mean()  # the sized batch holds more than the small steps
    assert steps[3].epoch == 0.0 < steps[4].epoch  # the small steps are not a pass over the data

    stopped = train(config, tmp_path / "stopped", stop=lambda: RunFolder(tmp_path / "stopped").events()[-1].get("step", 0) >= 2)
    assert stopped.status == "stopped" and stopped.step == 2
    resumed = train(run_dir=tmp_path / "stopped", resume=True)
    assert resumed.status == "finished" and resumed.step == whole.step
    assert max_diff(adapter_weights(tmp_path / "whole"), adapter_weights(tmp_path / "stopped")) < 1e-6


def test_a_resume_keeps_the_sizing_its_run_began_with(tiny_model_dir, tmp_path, monkeypatch):
    """Settings sized to the data are kept in the checkpoints: a run resumed after the rule changed
    (an upgrade) trains on as it began, to the same adapter as a run never stopped."""
    from localsft.train import sizing

    config = tiny_config(tiny_model_dir, make_data(tmp_path / "data"), epochs=None, learning_rate=None)
    whole = train(config, tmp_path / "whole")
    stopped = train(config, tmp_path / "stopped", stop=lambda: RunFolder(tmp_path / "stopped").events()[-1].get("step", 0) >= 2)
    assert stopped.status == "stopped" and stopped.step == 2
    monkeypatch.setattr(sizing, "MIN_STEPS", sizing.MIN_STEPS // 2)  # today's rule would size otherwise
    monkeypatch.setattr(sizing, "LEARNING_RATE", 3 * sizing.LEARNING_RATE)
    train(config, tmp_path / "today", stop=lambda: True)
    resumed = train(run_dir=tmp_path / "stopped", resume=True)

    def started(run: str) -> list[dict]:
        return [e for e in RunFolder(tmp_path / run).events() if e["type"] == "started"]
    assert started("today")[0]["steps"] != started("whole")[0]["steps"]  # a new run gets today's rule
    assert [e["steps"] for e in started("stopped")] == [started("whole")[0]["steps"]] * 2
    assert resumed.status == "finished" and resumed.step == whole.step
    assert max_diff(adapter_weights(tmp_path / "whole"), adapter_weights(tmp_path / "stopped")) < 1e-6
