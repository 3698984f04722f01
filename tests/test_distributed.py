"""Data-parallel training: two local processes under mlx.launch (ring backend over loopback) train
exactly what one process trains, only rank 0 writes, and a stop or resume works across the group."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from localsft.errors import UserError
from localsft.runs.folder import RunFolder
from localsft.train import train
from localsft.train.batching import Example
from localsft.train.distributed import Group, launch_command
from support.training import adapter_weights, make_data, max_diff, tiny_config

# 2 packed rows per micro-batch and 2 micro-batches per step: one row per rank, and micro-batches
# with a single row leave rank 1 an all-masked row; 8 validation examples are split across ranks too.
SETTINGS = dict(epochs=2, grad_accumulation=2, eval_every=3)


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory):
    """One process, the whole run: (config, run folder)."""
    root = tmp_path_factory.mktemp("reference")
    config = tiny_config(tiny_model_dir, make_data(root / "data"), **SETTINGS)
    result = train(config, root / "run")
    assert result.status == "finished"
    return config, result.run_dir


def _free_port() -> int:
    """A port p with p and p + 1 free (the ring backend listens on one per rank)."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def _hostfile(tmp_path: Path) -> Path:
    """An mlx.launch host file naming this machine twice: two processes over loopback."""
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps({"hosts": [{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}] * 2}))
    return hostfile


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.slow  # processes under mlx.launch
def test_two_processes_train_the_adapters_one_process_trains(reference, tiny_model_dir, tmp_path, localsft_home):
    config, reference_run = reference
    run_dir = tmp_path / "run"
    settings = [item for key, value in config.to_dict().items() if key not in ("model", "data")
                for item in ("--set", f"{key}={json.dumps(value)}")]
    done = subprocess.run([sys.executable, "-m", "localsft", "train", "--hosts", str(_hostfile(tmp_path)),
                           "--port", str(_free_port()), "--data", config.data, "--model", str(tiny_model_dir),
                           "--out", str(run_dir), *settings],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("finished:") and "exited with code" not in done.stderr
    for which in ("last", "best"):
        assert max_diff(adapter_weights(run_dir, which), adapter_weights(reference_run, which)) < 1e-4
    ours, theirs = RunFolder(run_dir).events(), RunFolder(reference_run).events()
    assert [e["type"] for e in ours] == [e["type"] for e in theirs]  # one event log, from rank 0
    assert np.allclose([e["loss"] for e in ours if e["type"] == "step"],
                       [e["loss"] for e in theirs if e["type"] == "step"], atol=1e-4)
    assert ([e["trained_tokens"] for e in ours if e["type"] == "step"]
            == [e["trained_tokens"] for e in theirs if e["type"] == "step"])  # tokens of both ranks counted
    # only rank 0 wrote: one run folder, nothing in the runs store, nothing where rank 1 was pointed
    from localsft.runs.lock import TRAINING_LOCK  # the machine's training lock: the one file it may hold

    assert [p.name for p in _files(localsft_home)] in ([], [TRAINING_LOCK]) and not (Path(tempfile.gettempdir()) / "localsft-rank-1-writes-nothing").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts.json", "run"]


_DRIVER = """
import sys
import localsft
from localsft.train import distributed

group = distributed.init()
steps = []
stop = (lambda: len(steps) >= 3) if group.is_main else None  # a stop asked on rank 0 only
result = distributed.train_in_group(group, run_dir=sys.argv[1], resume=True, stop=stop,
                                    on_event=lambda e: steps.append(e) if e.type == "step" else None)
print(f"rank {group.rank}: {result.status} at step {result.step}", flush=True)
"""


@pytest.mark.slow  # processes under mlx.launch
def test_two_processes_resume_one_process_run_and_stop_together(reference, tmp_path):
    """1 process trains 4 steps; 2 processes (plain mlx.launch) resume it and stop at step 7 because
    rank 0 was asked to; 1 process finishes it: the adapters are those of one uninterrupted run."""
    config, reference_run = reference
    run_dir = tmp_path / "run"
    steps = []
    first = train(config, run_dir, on_event=lambda e: steps.append(e) if e.type == "step" else None,
                  stop=lambda: len(steps) >= 4)
    assert first.status == "stopped" and first.step == 4
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    launcher = launch_command(_hostfile(tmp_path), [])[0]
    done = subprocess.run([launcher, "-n", "2", "--backend", "ring", "--starting-port", str(_free_port()), "--",
                           sys.executable, str(driver), str(run_dir)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300, env=_env())
    assert "rank 0: stopped at step 7" in done.stdout and "rank 1: stopped at step 7" in done.stdout, done.stderr
    assert RunFolder(run_dir).events()[-1]["type"] == "stopped"
    assert train(run_dir=run_dir, resume=True).status == "finished"
    for which in ("last", "best"):
        assert max_diff(adapter_weights(run_dir, which), adapter_weights(reference_run, which)) < 1e-4


def _examples(widths: list[int]) -> list[Example]:
    return [Example(np.arange(w + 1, dtype=np.int32) % 7, np.ones(w + 1, bool)) for w in widths]


def test_each_rank_takes_every_size_th_row_and_an_idle_rank_adds_nothing():
    examples = _examples([10, 20, 30])
    rows = [[0], [1], [2]]
    first, second = Group(rank=0, size=2), Group(rank=1, size=2)
    assert first.shard(rows) == [[0], [2]] and second.shard(rows) == [[1]]
    batch = second.local_batch(examples, rows, packed=True, pack_width=32)
    assert batch.inputs.shape[0] == 1 and batch.loss_tokens == 20
    idle = second.local_batch(examples, [[0]], packed=True, pack_width=32)
    assert idle.inputs.shape[0] == 1 and idle.loss_weight.sum() == 0 and idle.tokens == idle.loss_tokens == 0


def test_a_bad_host_file_is_a_plain_error(tmp_path):
    hostfile = tmp_path / "hosts.json"
    with pytest.raises(UserError, match="Cannot read the host file"):
        launch_command(hostfile, [])
    hostfile.write_text('{"hosts": [{"ssh": "mac-mini.local"}]}')
    with pytest.raises(UserError, match="needs \"ssh\".*\"ips\""):
        launch_command(hostfile, [])
    hostfile.write_text('{"hosts": [{"ssh": "mac-mini.local", "ips": ["10.0.0.2"]}]}')
    command = launch_command(hostfile, ["--data", "x.csv"])
    assert command[-4:] == ["localsft", "train", "--data", "x.csv"] and "--backend" in command
