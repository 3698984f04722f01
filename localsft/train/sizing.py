"""Settings sized to the data: one rule for steps, epochs, learning rate, batch and LoRA placement.

A setting left unset (None) in the TrainConfig is decided here from the number of training
examples and their token lengths; a setting the user gave always wins. The rule:

    LoRA placement   every linear layer of every block (lora_layers = -1, lora_keys = all)
    examples / step  b = 4 below 100 examples, then n / 25, at most 8
    pack_width       b x mean example length, as a row width between 64 and 256
    batch_tokens     b x mean example length, to the nearest whole packed row (at least one)
    optimizer steps  at least 60 (a floor of useful updates for 30-50 examples) and
                     2 epochs; never more than 8 epochs (10 examples do not get 60 steps)
    learning rate    1e-3 (rank 8, alpha 16: the update is scaled by 2)

Evidence, published:
- QLoRA (Dettmers et al. 2023, arXiv:2305.14314, section 4): LoRA on every linear layer of
  every block is what it takes to match full fine-tuning; the number of adapted layers
  mattered more than the rank.
- "LoRA Without Regret" (Schulman et al., Thinking Machines 2025): apply LoRA to all layers,
  the MLP above all; LoRA's best learning rate is about 10x full fine-tuning's (up to 15x
  for runs under 100 steps); LoRA is less tolerant of large batches than full fine-tuning,
  so small data wants small batches. SmolLM2's own fine-tuning lr is ~1e-4-3e-4 (full),
  hence ~1e-3 for a short LoRA run.
- LIMA (Zhou et al. 2023, arXiv:2305.11206): 1,000 curated examples trained for 15 epochs
  still improved; on tiny sets more passes help as long as a held-out check picks the
  checkpoint (which the loop does: best validation, format adherence when checked).

Evidence, measured here (docs/training.md has the tables): with the old fixed defaults a
40-row set got 9 optimizer steps (1,024-token batches = 16 examples per step) and answered
"Hi,\\n\\nHi,..." ; with this rule it gets 60 steps of ~4 examples and reaches the format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from localsft.train.config import TrainConfig

SIZED_FIELDS = ("lora_layers", "pack_width", "batch_tokens", "learning_rate", "epochs")
MIN_STEPS = 60  # below ~50 examples, fewer updates than this left the format unlearned
TARGET_EPOCHS = 2.0  # above ~120 examples, 2 passes reached the format; more cost time and retention
MAX_EPOCHS = 8.0  # the floor of steps never buys more passes than this over a tiny set
LEARNING_RATE = 1e-3
SMALL_BATCH, LARGE_BATCH = 4, 8  # examples per optimizer step
MIN_PACK_WIDTH, MAX_PACK_WIDTH = 64, 256  # packed row width bounds (positions)
VALID_CAP = 16  # validation examples scored per evaluation (a fixed, length-spread subset)
EVALS_PER_RUN = 6  # validations per run when eval_every is unset


@dataclass
class Sizing:
    """What the rule decided, for the plan: the numbers and one line in plain words."""

    examples: int
    mean_tokens: float
    examples_per_step: int
    sized: list[str]  # the settings the rule chose (the others were given)
    summary: str = ""

    def to_dict(self) -> dict:
        return {"examples": self.examples, "mean_tokens": round(self.mean_tokens, 1),
                "examples_per_step": self.examples_per_step, "sized": self.sized, "summary": self.summary}


def examples_per_step(n: int) -> int:
    """Small sets get small batches (more updates per epoch); larger ones up to 8 examples."""
    return min(LARGE_BATCH, max(SMALL_BATCH, n // 25))


def pack_width_for(n: int, mean_width: float) -> int:
    """Packed row width: about one step's examples (64-256 positions), so short examples still
    come a few per step instead of twenty."""
    from localsft.train.batching import width_bucket

    return min(MAX_PACK_WIDTH, max(MIN_PACK_WIDTH, width_bucket(math.ceil(examples_per_step(n) * mean_width))))


def batch_tokens_for(n: int, mean_width: float, pack_width: int, max_width: int) -> int:
    """A token budget holding about `examples_per_step(n)` examples, in whole packed rows."""
    row = max(pack_width, max_width)
    wanted = examples_per_step(n) * mean_width
    return max(row, round(wanted / pack_width) * pack_width)  # the nearest whole number of rows


def epochs_for(steps_per_epoch: int) -> float:
    """Passes so that the run makes at least MIN_STEPS updates and TARGET_EPOCHS passes, capped."""
    steps = max(MIN_STEPS, math.ceil(TARGET_EPOCHS * steps_per_epoch))
    return round(min(MAX_EPOCHS, steps / max(steps_per_epoch, 1)), 3)


def size_config(config: TrainConfig, widths: list[int], steps_per_epoch) -> tuple[TrainConfig, Sizing]:
    """The config with every unset sized field decided from the training examples.

    widths: token positions of each training example (after truncation).
    steps_per_epoch(config): optimizer steps of one epoch under a config (the batch plan's count).
    """
    n = len(widths)
    mean_width = float(np.mean(widths)) if widths else 0.0
    changes: dict = {}
    if config.lora_layers is None:
        changes["lora_layers"] = -1
    if config.learning_rate is None:
        changes["learning_rate"] = LEARNING_RATE
    if config.pack_width is None:
        changes["pack_width"] = pack_width_for(n, mean_width)
    if config.batch_tokens is None:
        pack_width = changes.get("pack_width", config.pack_width)
        changes["batch_tokens"] = batch_tokens_for(n, mean_width, pack_width, max(widths, default=0))
    sized = config.replace(**changes) if changes else config
    if config.epochs is None:
        epochs = 1.0 if config.iters else epochs_for(steps_per_epoch(sized))
        changes["epochs"] = epochs
        sized = sized.replace(epochs=epochs)
    sizing = Sizing(n, mean_width, examples_per_step(n), sorted(changes))
    return sized, sizing


def describe(sizing: Sizing, steps: int, seconds: float) -> str:
    """"40 examples: 60 steps, about 4 minutes" and which settings were sized."""
    minutes = max(1, round(seconds / 60))
    what = f"{sizing.examples} examples: {steps} steps, about {minutes} minute{'s' if minutes > 1 else ''}"
    if sizing.sized:
        what += f" (sized to the data: {', '.join(sizing.sized)})"
    return what


def eval_every(total_steps: int) -> int:
    """Steps between validations: about EVALS_PER_RUN per run, so validation cost follows run length."""
    return max(1, math.ceil(total_steps / EVALS_PER_RUN))


def validation_subset(lengths: list[int], cap: int = VALID_CAP) -> list[int]:
    """Indices of at most `cap` validation examples, spread evenly over the length order.

    Fixed (no randomness) so every evaluation scores the same rows; spread over lengths so the
    subset is as representative as the whole held-out split."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    if len(order) <= cap:
        return order
    return sorted(order[round(k * (len(order) - 1) / (cap - 1))] for k in range(cap))
