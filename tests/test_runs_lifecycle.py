"""A run's life from the outside, with real `localsft train` processes on a tiny model: locks,
SIGKILL, a second resume, Delete, bad settings, divergence, the second Ctrl-C, a full disk,
damaged run folders. What `localsft runs` and the studio say at each point."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import pytest

from localsft import paths
from localsft.cli import main
from localsft.errors import UserError
from localsft.runs import jobs
from localsft.runs.folder import RunFolder
from localsft.runs.status import read_progress
from localsft.train import TrainConfig, train
from localsft.train import checkpoint as checkpoint_module
from support.training import make_data, tiny_config

SMALL = ["--set", "max_seq_len=128", "--set", "batch_tokens=256", "--set", "pack_width=128",
         "--set", "sample_prompts=0", "--set", "early_stopping_patience=0"]
ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.Popen:
    """`localsft ARGS` as a user would start it, in its own process."""
    return subprocess.Popen([sys.executable, "-m", "localsft", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    child = cli(*args)
    out, err = child.communicate(timeout=timeout)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def wait_for_step(run_dir: Path, child: subprocess.Popen, step: int = 1) -> None:
    deadline = time.time() + 300
    while not any(e["type"] == "step" and e["step"] >= step for e in RunFolder(run_dir).events()):
        assert child.poll() is None, child.communicate()[1]
        assert time.time() < deadline, "no training step within 5 minutes"
        time.sleep(0.05)


def runs_table(capsys) -> dict[str, str]:
    """`localsft runs`, as {run name: its line}."""
    assert main(["runs"]) == 0
    return {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}


@pytest.fixture
def long_training(tiny_model_dir, tmp_path):
    """A CLI training in the runs store that runs until it is stopped."""
    run_dir = paths.runs_dir() / "cli-run"
    child = cli("train", "--data", str(make_data(tmp_path / "data", n_train=200)), "--model", str(tiny_model_dir),
                "--out", str(run_dir), "--set", "iters=100000", "--set", "checkpoint_every=2", *SMALL)
    wait_for_step(run_dir, child, 3)
    yield run_dir, child
    if child.poll() is None:
        child.kill()
        child.wait()


def test_a_cli_training_is_the_studio_job_and_sigkill_shows_interrupted(long_training, tmp_path, capsys):
    run_dir, child = long_training
    job = jobs.current_job()
    assert job is not None and job.run_dir == run_dir.resolve() and job.pid == child.pid
    assert "running (step" in runs_table(capsys)["cli-run"]
    assert read_progress(run_dir).status == "running"

    second = run_cli("train", "--resume", str(run_dir))  # a second resume of a run still training
    assert second.returncode == 2 and "being trained right now" in second.stderr and "Traceback" not in second.stderr
    other = tmp_path / "other-run"
    another = run_cli("train", "--data", "x.csv", "--out", str(other))  # one training per machine
    assert another.returncode == 2 and "already running" in another.stderr and not other.exists()
    with pytest.raises(UserError, match="already running"):
        jobs.start_training(TrainConfig(data="x.csv"))
    with pytest.raises(UserError, match="being trained right now"):
        jobs.delete_run("cli-run")  # the studio's Delete
    assert run_dir.exists()
    from localsft.export import export_run

    with pytest.raises(UserError, match="being trained right now"):
        export_run(run_dir, "adapter")  # an export writes into the run folder too

    child.send_signal(signal.SIGKILL)
    child.wait()
    assert "interrupted" in runs_table(capsys)["cli-run"]
    assert jobs.current_job() is None and read_progress(run_dir).status == "interrupted"


@pytest.mark.slow
def test_the_second_ctrl_c_stops_at_once_even_mid_step_and_the_run_resumes(tmp_path):
    """Steps of a few seconds (a wider random model, big batches), like a real model's on a laptop CPU:
    Python runs no signal handler until MLX returns, so before, both Ctrl-C waited for the step."""
    from support.tiny_model import make_tiny_model

    model = make_tiny_model(tmp_path / "wide", layers=4, hidden=512, heads=8, kv_heads=4)
    data = make_data(tmp_path / "data", n_train=400)
    (data / "valid.jsonl").unlink()
    run_dir = tmp_path / "run"
    child = cli("train", "--data", str(data), "--model", str(model), "--out", str(run_dir), "--set", "iters=100000",
                "--set", "checkpoint_every=2", "--set", "compile=false", "--set", "max_seq_len=512",
                "--set", "pack_width=512", "--set", "batch_tokens=4096", "--set", "sample_prompts=0")
    try:
        wait_for_step(run_dir, child, 2)
        steps = [e for e in RunFolder(run_dir).events() if e["type"] == "step"]
        step_seconds = steps[1]["elapsed_s"] - steps[0]["elapsed_s"]
        time.sleep(min(1.0, step_seconds / 3))  # into step 3 (after step 2's checkpoint)
        child.send_signal(signal.SIGINT)
        time.sleep(0.3)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        child.wait(timeout=120)
        waited = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 128 + signal.SIGINT, f"ended with {child.returncode} (a step took {step_seconds:.1f} s)"
    assert waited < max(1.0, step_seconds / 2), f"{waited:.1f} s after the second Ctrl-C, steps take {step_seconds:.1f} s"
    assert read_progress(run_dir).status == "interrupted"
    config = TrainConfig.load(run_dir / "config.yaml")
    config.iters = read_progress(run_dir).step + 1  # (short, so that resuming finishes here)
    config.save(run_dir / "config.yaml")
    assert train(run_dir=run_dir, resume=True).status == "finished"


def test_a_failed_resume_leaves_a_finished_run_finished(tiny_model_dir, tmp_path, capsys):
    model = tmp_path / "model-copy"
    shutil.copytree(tiny_model_dir, model)
    run_dir = paths.runs_dir() / "done"
    train(tiny_config(model, make_data(tmp_path / "data"), epochs=1), run_dir)
    assert "finished" in runs_table(capsys)["done"]
    shutil.rmtree(model)  # the model it was trained on is gone: resuming cannot begin
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    progress = read_progress(run_dir)
    assert progress.status == "finished" and progress.message  # the failure is told, the run stays finished
    assert RunFolder(run_dir).events()[-1]["type"] == "resume_failed"
    assert "finished" in runs_table(capsys)["done"]


def test_train_out_never_writes_into_a_folder_holding_files(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "my-folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    data = str(make_data(tmp_path / "data"))
    assert main(["train", "--data", data, "--model", str(tiny_model_dir), "--out", str(folder)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"] and (folder / "notes.txt").read_text() == "mine"
    assert main(["train", "--data", data, "--out", str(folder / "notes.txt")]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.parametrize("setting", ["epochs=.inf", "epochs=.nan", "epochs=-1", "epochs=1e300", "epochs=inf",
                                     "learning_rate=.nan", "learning_rate=-.inf", "iters=100000000000000",
                                     "lora_rank=-3", "epochs=[1]", "warmup_ratio=nan"])
def test_bad_numbers_are_plain_messages(setting, tiny_model_dir, tmp_path, capsys):
    code = main(["train", "--data", str(make_data(tmp_path / "data")), "--model", str(tiny_model_dir),
                 "--set", setting, "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: Invalid training setting") and setting.split("=")[0] in err


def pretrained_tiny_model(tiny_model_dir: Path, data: Path, out: Path) -> Path:
    """The tiny model after a full fine-tune on `data`: a base that already fits the task (val loss ~1),
    so that a far too high learning rate makes it worse than before (a random model cannot get worse)."""
    import mlx_lm
    from mlx_lm.utils import save_model

    trained = train(tiny_config(tiny_model_dir, data, method="full", learning_rate=3e-3, epochs=6,
                                eval_every=1000), out.parent / "pretraining")
    shutil.copytree(tiny_model_dir, out)
    model, _ = mlx_lm.load(str(out))
    model.load_weights(list(mx.load(str(trained.run_dir / "adapters/last/adapters.safetensors")).items()),
                       strict=False)
    save_model(out, model)
    return out


def test_a_diverging_run_stops_and_says_so(tiny_model_dir, tmp_path, capsys):
    data = make_data(tmp_path / "data")
    model = pretrained_tiny_model(tiny_model_dir, data, tmp_path / "pretrained")
    run_dir = paths.runs_dir() / "too-fast"
    code = main(["train", "--data", str(data), "--model", str(model), "--out", str(run_dir), *SMALL,
                 "--set", "learning_rate=1e6", "--set", "warmup_ratio=0", "--set", "eval_every=2"])
    err = capsys.readouterr().err
    assert code == 2 and "diverged" in err and "lower learning rate" in err
    events = RunFolder(run_dir).events()
    assert events[-1]["type"] == "diverged" and events[-1]["val_loss"] > 1.5 * events[-1]["base_val_loss"]
    assert read_progress(run_dir).status == "diverged"
    assert not (run_dir / "adapters" / "best").exists()  # the untrained adapter is never offered as the best
    assert "diverged" in runs_table(capsys)["too-fast"]


def test_a_full_disk_names_the_folder_and_leaves_no_partial_files(tiny_model_dir, tmp_path, monkeypatch):
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux) to make writes fail with ENOSPC")
    real_create = checkpoint_module._create
    monkeypatch.setattr(checkpoint_module, "_create", lambda path: open("/dev/full", "wb"))
    run_dir = tmp_path / "run"
    with pytest.raises(UserError) as err:
        train(tiny_config(tiny_model_dir, make_data(tmp_path / "data"), eval_every=2), run_dir)
    assert "disk is full" in str(err.value) and str(run_dir) in str(err.value)
    assert [p.name for p in run_dir.rglob("*") if ".tmp" in p.name] == []  # no half-written file
    assert RunFolder(run_dir).events()[-1]["type"] == "failed"
    assert read_progress(run_dir).status == "failed" and "disk is full" in read_progress(run_dir).message
    monkeypatch.setattr(checkpoint_module, "_create", real_create)  # space freed: resume
    assert train(run_dir=run_dir, resume=True).status == "finished"


def test_a_damaged_run_folder_is_skipped_with_a_warning(tiny_model_dir, tmp_path, capsys):
    good = paths.runs_dir() / "good"
    train(tiny_config(tiny_model_dir, make_data(tmp_path / "data"), epochs=1), good)
    bad_config = paths.runs_dir() / "bad-config"
    bad_config.mkdir()
    (bad_config / "config.yaml").write_text("model: [unclosed\n")
    bad_events = paths.runs_dir() / "bad-events"
    shutil.copytree(good, bad_events)
    (bad_events / "events.jsonl").write_bytes(b'{"type": "step", "step": "x", "loss": []}\n[1, 2]\n\xff\xfe\n')
    assert main(["runs"]) == 0
    out, err = capsys.readouterr()
    assert "good" in out and "finished" in out
    assert "bad-config" in err and "bad-events" in err and "Traceback" not in err

    from localsft_ui import app, runs_tab

    assert [row[0] for row in runs_tab.runs_table()] == ["good"]
    demo = app.build()  # the studio starts
    ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    assert {"train-set-learning_rate", "train-set-epochs", "train-set-packing"} <= ids  # from the schema
    assert not ids & {"train-set-data", "train-set-model", "train-extra"}  # no field names a file


def test_the_studio_hands_the_child_its_checked_config_as_a_file(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, make_data(tmp_path / "data"), iters=100000, checkpoint_every=2)
    job = jobs.start_training(config)
    try:
        command = Path(f"/proc/{job.pid}/cmdline").read_bytes().split(b"\0") if Path("/proc").exists() else []
        if command:
            assert b"--config" in command and b"--set" not in command
        assert TrainConfig.load(job.run_dir / "config.yaml") == config
        assert jobs.current_job().pid == job.pid
    finally:
        jobs.stop_training()
        assert jobs.wait(job, 60)
    assert read_progress(job.run_dir).status == "stopped"
