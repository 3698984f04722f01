"""The trainer: one config schema, batching with packing, our own loop, checkpoints, events.

    config.py      TrainConfig: every setting of a run, with its default and help
    batching.py    length buckets, sequence packing, fixed-shape batches
    loss.py        packed block-diagonal mask, loss computed only where answers are
    setup.py       data splits, LoRA/DoRA/full on an mlx-lm model, optimizer and schedule
    plan.py        memory estimate, refusal, calibration
    checkpoint.py  atomic checkpoints (weights, optimizer, position) and mlx-lm adapters
    events.py      typed events and the run's JSONL event log
    loop.py        train(): the loop, stop, resume, early stopping, NaN guard, divergence
    claim.py       a new run only in a new or empty folder; the run and machine locks
    group.py       the processes training together (mx.distributed) and their collective ops
    distributed.py data-parallel training over mx.distributed (mlx.launch, `train --hosts`)
"""

from localsft.train.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str):
    """`train` and `TrainResult` load MLX: imported on first use, so the config alone stays light."""
    if name in ("train", "TrainResult"):
        from localsft.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'localsft.train' has no attribute {name!r}")
