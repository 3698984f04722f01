"""Checkpoints and adapters, written atomically so a crash at any moment leaves a readable run.

A checkpoint folder `RUN/checkpoints/step-N/` holds `state.safetensors` (trainable
weights, optimizer state) and `state.json` (step, data position, best-so-far,
schedule position). The random stream needs no saving: the loop reseeds it from
(seed, micro-batch number) before every micro-batch. It is written under a temporary name and renamed into place, so a
`step-N` folder is always complete. Adapters use mlx-lm's format
(adapters.safetensors + adapter_config.json), each file replaced atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map_with_path

from localsft.runs.folder import RunFolder, atomic_write_text

KEEP_CHECKPOINTS = 2


@dataclass
class TrainState:
    """Where training stands; with the weights and optimizer state it is enough to resume exactly."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch of the next micro-batch (-1: the run's first small steps, BatchPlan.SMALL)
    batch_index: int = 0  # index of the next micro-batch within that epoch
    trained_tokens: int = 0
    best_val_loss: float | None = None
    best_step: int = 0
    evals_since_best: int = 0  # validations since the last progress: a new best, or a new lowest loss
    lowest_val_loss: float | None = None
    base_val_loss: float | None = None  # before any training: what divergence is measured against
    elapsed_s: float = 0.0
    best_adherence: float | None = None  # the highest held-out format adherence so far (format_watch.py)

    best_accuracy: float | None = None  # preference runs: held-out preference accuracy of the best step
    sized: dict | None = None  # what sizing.py decided when the run began: a resume keeps it, whatever the rule is now


def _create(path: Path):
    """Open a new file for writing (tests put a full disk here)."""
    return open(path, "wb")


def _write_safetensors(path: Path, arrays: dict, metadata: dict | None = None) -> None:
    """Write through a Python file so that a full disk raises OSError(ENOSPC): MLX's own path
    writer reports it only as a RuntimeError, and not at all for some short writes."""
    with _create(path) as fh:
        mx.save_safetensors(fh, arrays, metadata=metadata or {})
        fh.flush()
        os.fsync(fh.fileno())


def _save_safetensors(path: Path, arrays: dict, metadata: dict | None = None) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.safetensors")
    try:
        _write_safetensors(tmp, arrays, metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(run: RunFolder, model: nn.Module, optimizer, state: TrainState) -> Path:
    """Write `checkpoints/step-N` atomically and prune all but the newest few.

    On any failure (a full disk) the half-written folder is removed; older checkpoints stay.
    """
    final = run.checkpoints_dir / f"step-{state.step}"
    tmp = run.checkpoints_dir / f".tmp-step-{state.step}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        arrays = {f"param.{k}": v for k, v in tree_flatten(model.trainable_parameters())}
        arrays.update({f"opt.{k}": v for k, v in tree_flatten(optimizer.state)})
        _write_safetensors(tmp / "state.safetensors", arrays)
        atomic_write_text(tmp / "state.json", json.dumps(asdict(state), indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(run)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run: RunFolder) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    if not run.checkpoints_dir.exists():
        return []
    found = [p for p in run.checkpoints_dir.glob("step-*") if (p / "state.json").exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def load_checkpoint(path: Path, model: nn.Module, optimizer) -> TrainState:
    """Restore weights and optimizer state from `path`; returns the saved TrainState."""
    arrays = mx.load(str(path / "state.safetensors"))
    params = [(k[len("param."):], v) for k, v in arrays.items() if k.startswith("param.")]
    model.load_weights(params, strict=False)
    optimizer.init(model.trainable_parameters())
    saved = {k[len("opt."):]: v for k, v in arrays.items() if k.startswith("opt.")}
    optimizer.state = tree_map_with_path(lambda key, value: saved.get(key, value), optimizer.state)
    mx.eval(model.parameters(), optimizer.state)
    return read_state(path)


def read_state(path: Path) -> TrainState:
    """The TrainState saved in checkpoint folder `path` (a field since dropped is ignored)."""
    saved = json.loads((path / "state.json").read_text())
    known = {f.name for f in dataclasses.fields(TrainState)}
    return TrainState(**{k: v for k, v in saved.items() if k in known})


def adapter_config(config, num_layers: int, keys: list[str]) -> dict:
    """mlx-lm's adapter_config.json for this run."""
    return {
        "fine_tune_type": config.method,
        "num_layers": num_layers,
        "lora_parameters": {"rank": config.lora_rank, "scale": config.lora_scale,
                            "dropout": config.lora_dropout, "keys": keys},
    }


def save_adapters(folder: Path, model: nn.Module, adapter_conf: dict) -> Path:
    """Write the trainable weights as an mlx-lm adapter folder (each file replaced atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.trainable_parameters()))
    _save_safetensors(folder / "adapters.safetensors", weights)
    atomic_write_text(folder / "adapter_config.json", json.dumps(adapter_conf, indent=2))
    return folder
