"""Before training: how much memory the run needs and how long it will take.

Memory is first estimated from the model's shape (so a run that cannot fit is refused
before anything big is allocated), then a short calibration (one row of the widest
batch, after a short warm-up) gives the real speed and peak memory per row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from localsft.platform.backend import available_memory_bytes
from localsft.errors import UserError

MB = 1024 * 1024


@dataclass
class Plan:
    est_seconds: float
    est_memory_bytes: int
    available_bytes: int
    tokens_per_s: float


def _args(model: nn.Module) -> dict:
    args = getattr(model, "args", None)
    return vars(args) if args is not None else {}


def estimate_memory(model: nn.Module, rows: int, width: int, loss_positions: int,
                    backward_layers: int, trainable: int) -> int:
    """Bytes: weights + trainable state (weight, grad, two Adam moments) + saved activations + logits."""
    weights = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    a = _args(model)
    hidden = a.get("hidden_size", 1024)
    inter = a.get("intermediate_size", 4 * hidden)
    heads = a.get("num_attention_heads", 16)
    vocab = a.get("vocab_size", 32000)
    tokens = rows * width
    per_layer = tokens * (12 * hidden + 4 * inter) * 4 + rows * heads * width * width * 4 * 2
    logits = loss_positions * vocab * 4 * 3
    return weights + trainable * 4 * 4 + backward_layers * per_layer + logits


def check_fits(needed: int, what: str = "This run") -> int:
    """Refuse plainly when `needed` bytes will not fit; returns the available bytes."""
    available = available_memory_bytes()
    if needed > 0.9 * available:
        raise UserError(f"{what} needs about {needed / MB / 1024:.1f} GiB of memory but only "
                        f"{available / MB / 1024:.1f} GiB is free. Lower batch_tokens or max_seq_len, "
                        f"adapt fewer layers (lora_layers), or set grad_checkpoint: true.")
    return available


def calibrate(step_fn, batch_args: tuple, tokens: int) -> tuple[float, int, object]:
    """(seconds per token, peak bytes, outputs) of `step_fn(*batch_args)` on a micro-batch.

    A warm-up on the row's first 32 positions (no loss) first, so that MLX builds its
    fused kernels there; the measured call then costs about one training step."""
    inputs, targets, segments, _, _ = batch_args
    no_loss = mx.zeros((16,), mx.int32)  # loss index 0 with weight 0: an all-masked batch
    mx.eval(step_fn(inputs[:, :32], targets[:, :32], segments[:, :32], no_loss, no_loss.astype(mx.float32)))
    mx.reset_peak_memory()
    outputs = step_fn(*batch_args)  # building the graph (a new shape: traced) is not timed
    start = time.perf_counter()
    mx.eval(outputs)
    seconds = time.perf_counter() - start
    return seconds / max(tokens, 1), mx.get_peak_memory(), outputs
