"""`localsft train` / `runs` from the command line, SIGTERM from a UI, and one real-model run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import pytest

from localsft.cli import main
from localsft.runs.folder import RunFolder
from localsft.train import TrainConfig, train
from support.training import make_data

TINY_SETTINGS = ["--set", "max_seq_len=128", "--set", "batch_tokens=256", "--set", "sample_prompts=0"]


def test_train_then_runs_lists_it(tiny_model_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", "--data", str(make_data(tmp_path / "data")), "--model", str(tiny_model_dir),
                 "--out", str(run_dir), "--set", "epochs=1", *TINY_SETTINGS])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("finished:") and str(run_dir) in last and "adapters" in last
    assert TrainConfig.load(run_dir / "config.yaml").epochs == 1
    import shutil
    from localsft import paths
    shutil.copytree(run_dir, paths.runs_dir() / "my-run")
    assert main(["runs"]) == 0
    line = next(li for li in capsys.readouterr().out.splitlines() if li.startswith("my-run"))
    assert "finished" in line and "tiny-llama" in line


def test_dry_run_shows_the_plan_and_trains_nothing(tiny_model_dir, tmp_path, capsys):
    code = main(["train", "--data", str(make_data(tmp_path / "data")), "--model", str(tiny_model_dir),
                 "--dry-run", *TINY_SETTINGS])
    assert code == 0
    assert "steps" in capsys.readouterr().err


def test_sigterm_stops_the_cli_cleanly_with_a_checkpoint(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "localsft", "train", "--data", str(make_data(tmp_path / "data", n_train=200)),
           "--model", str(tiny_model_dir), "--out", str(run_dir), "--set", "epochs=50", *TINY_SETTINGS]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    deadline = time.time() + 120
    while not any(e["type"] == "step" for e in RunFolder(run_dir).events()):
        assert child.poll() is None and time.time() < deadline, child.stderr.read() if child.poll() else "timeout"
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    events = RunFolder(run_dir).events()
    assert events[-1]["type"] == "stopped"
    assert Path(events[-1]["checkpoint"]).exists()
    assert "--resume" in out.strip().splitlines()[-1]


@pytest.mark.slow
def test_real_default_model_learns_a_recipe(default_model_dir, tmp_path):
    from localsft.train.recipes import load_recipe

    config = load_recipe("brand-voice").train_config().replace(
        model=str(default_model_dir), iters=4, eval_every=4, learning_rate=1e-3, batch_tokens=512,
        max_seq_len=192, sample_prompts=1, sample_max_tokens=16, valid_fraction=0.05, test_fraction=0.05,
        replay=0.0)  # replay on the real model: test_small_data_default.py
    events = []
    result = train(config, tmp_path / "run", on_event=events.append)
    assert result.status == "finished"
    evals = [e.val_loss for e in events if e.type == "eval"]
    assert len(evals) == 2 and evals[-1] < evals[0] - 0.05, evals  # base model vs after 4 steps
    steps = [e for e in events if e.type == "step"]
    assert steps[-1].tokens_per_s > 0 and steps[-1].peak_memory_mb > 0
    weights = mx.load(str(RunFolder(result.run_dir).adapters_dir("last") / "adapters.safetensors"))
    lora_b = [v for k, v in weights.items() if k.endswith("lora_b")]
    assert lora_b and all(float(mx.abs(v).max().item()) > 0 for v in lora_b)  # initialised at zero
    started = events[0]
    assert started.est_seconds > 0 and started.est_memory_mb > 100
