"""Settings sized to the data: one rule for steps, epochs, learning rate, batch and LoRA placement.

A setting left unset (None) in the TrainConfig is decided here from the number of training
examples and their token lengths; a setting the user gave always wins. The rule:

    LoRA placement   every linear layer of every block (lora_layers = -1, lora_keys = all)
    examples / step  b = 2 below 100 examples, then n / 25 (4 to 8) after 10 first steps
                     of 2 (small_steps; only where the batch is sized)
    pack_width       b x mean example length, as a row width between 64 and 256
    batch_tokens     b x mean example length, to the nearest whole packed row (at least one)
    optimizer steps  at least 60 (a floor of useful updates for 30-50 examples) and
                     2 epochs; never more than 8 epochs (10 examples do not get 60 steps)
    learning rate    1e-4 for LoRA/DoRA at rank 8, alpha 160 (the update is scaled by 20, as
                     mlx-lm does); 1e-5 for full fine-tuning
    warmup           none for LoRA/DoRA (B starts at zero, so the first updates are small
                     anyway), 5% of the steps for full fine-tuning
    validation       about 6 per run; 12 when the run has a format check, and every 5 steps
                     up to step 20 (its early checks catch the step the format is learned;
                     see format_watch.py)

Evidence, published:
- QLoRA (Dettmers et al. 2023, arXiv:2305.14314, section 4): LoRA on every linear layer of
  every block is what it takes to match full fine-tuning; the number of adapted layers
  mattered more than the rank.
- "LoRA Without Regret" (Schulman et al., Thinking Machines 2025): apply LoRA to all layers,
  the MLP above all; LoRA's best learning rate is about 10x full fine-tuning's; LoRA is less
  tolerant of large batches than full fine-tuning, so small data wants small batches.
- LIMA (Zhou et al. 2023, arXiv:2305.11206): 1,000 curated examples trained for 15 epochs
  still improved; on tiny sets more passes help as long as a held-out check picks the
  checkpoint (which the loop does: best validation, format adherence when checked).

Evidence, measured here (benchmarks/time_to_quality.py; docs/training.md has the tables):
- The old fixed defaults gave a 40-row set 9 optimizer steps (1,024-token batches = 16
  examples per step) and it answered "Hi,\n\nHi,...".
- The step size: with Adam, a LoRA update moves B by about the learning rate per step and the
  weights by scale x that x A; at the same product (2e-3) a scale of 2 with lr 1e-3 also moves
  A ten times faster, and on the fixed-format set (40 rows, 2 per step) the answers fell into
  loops between checkpoints (held-out adherence 0.45, 0.0, 0.8, 0.55, 0.05, 0.95 every 5
  steps); scale 20 with lr 1e-4 (mlx-lm's convention) had 0.9 at step 5 and 1.0 from step 10.
- The batch: at scale 20, lr 1e-4, 2 examples per step reached 100% at step 10 (61 CPU s,
  retention 0.93); 4 per step reached it at step 15 (99 CPU s, retention 0.73, and 12 of 20
  answers the same). One per step learned slower (glossary, 40 rows: 100% first at step 63),
  as did lr 2e-4 (95% at step 15, not 10). Above 100 examples, 2 per step reached the format
  after fewer examples (157 fixed-format rows: 100% at step 10 after 20 examples, against step 5
  after 35 in steps of 7; 0.70 of mlx_lm's CPU seconds to 95% instead of 1.15), but its 2 epochs
  took 187-231 steps instead of 60-72 and drifted further: brand-voice (192 rows) kept 0.80 of
  the general-knowledge score instead of 0.97, glossary (200) ended at 90% with one answer of 20
  looping. So larger sets keep their larger steps, after a few first ones of 2 (SMALL_STEPS).
  With 20 of them, side by side with mlx_lm (fixed-format 157 rows, glossary 200, brand-voice
  192) CPU seconds to 95% fell to 0.68, 0.76 and 0.80 of mlx_lm's (the larger steps alone:
  0.99 on fixed-format in the same session, 1.15-1.35 the session before), but retention was
  0.897, 1.03 and 0.92, one glossary answer of 20 looped and whole runs grew to 1.26-1.51x
  mlx_lm's CPU seconds. With 10 (the rule): 64.0, 68.4 and 351.0 CPU s to 95% (20 small steps:
  64.8, 76.3, 204.8: brand-voice had learned its format within 20 steps of 2; now at step 28),
  retention 0.95, 0.92 and 0.92, no degenerate answer, whole runs 485, 686 and 1025
  CPU s (20: 673, 806, 1102). Retention and sound answers are targets; the speed to the format
  on brand-voice is the price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from localsft.train.config import TrainConfig

SIZED_FIELDS = ("lora_layers", "pack_width", "batch_tokens", "small_steps", "learning_rate", "epochs", "warmup_ratio")
MIN_STEPS = 60  # below ~50 examples, fewer updates than this left the format unlearned
TARGET_EPOCHS = 2.0  # above ~120 examples, 2 passes reached the format; more cost time and retention
MAX_EPOCHS = 8.0  # the floor of steps never buys more passes than this over a tiny set
LEARNING_RATE = 1e-4  # LoRA/DoRA, at the default scale alpha / rank = 20
FULL_LEARNING_RATE = 1e-5
TINY_BATCH, SMALL_BATCH, LARGE_BATCH = 2, 4, 8  # examples per optimizer step
SMALL_STEPS = 10  # a larger batch comes after this many steps of TINY_BATCH (sets of 100+ examples)
FULL_WARMUP = 0.05  # warmup share for full fine-tuning (LoRA/DoRA: none)
MIN_PACK_WIDTH, MAX_PACK_WIDTH = 64, 256  # packed row width bounds (positions)
VALID_CAP = 16  # validation examples scored per evaluation (a fixed, length-spread subset)
EVALS_PER_RUN = 6  # validations per run when eval_every is unset
FORMAT_EVALS_PER_RUN = 12  # ... when the run has a format check
EARLY_EVERY, EARLY_UNTIL = 5, 20  # ... and before step 20 one every 5 steps (validation_steps)


@dataclass
class Sizing:
    """What the rule decided, for the plan: the numbers and one line in plain words."""

    examples: int  # the user's training examples
    mean_tokens: float
    examples_per_step: int
    sized: list[str]  # the settings the rule chose (the others were given)
    summary: str = ""
    replay: int = 0  # general rows mixed in (replay.py), counted in the rule's numbers
    small_steps: int = 0  # first steps of TINY_BATCH examples, before examples_per_step

    def to_dict(self) -> dict:
        return {"examples": self.examples, "replay": self.replay, "mean_tokens": round(self.mean_tokens, 1),
                "examples_per_step": self.examples_per_step, "small_steps": self.small_steps,
                "sized": self.sized, "summary": self.summary}


def examples_per_step(n: int) -> int:
    """Small sets get small batches (more updates per epoch); larger ones up to 8 examples."""
    return TINY_BATCH if n < 100 else min(LARGE_BATCH, max(SMALL_BATCH, n // 25))


def pack_width_for(per_step: int, mean_width: float) -> int:
    """Packed row width: about one step's examples (64-256 positions), so short examples still
    come a few per step instead of twenty."""
    from localsft.train.batching import width_bucket

    return min(MAX_PACK_WIDTH, max(MIN_PACK_WIDTH, width_bucket(math.ceil(per_step * mean_width))))


def batch_tokens_for(per_step: int, mean_width: float, pack_width: int, max_width: int) -> int:
    """A token budget holding about `per_step` examples, in whole packed rows."""
    row = max(pack_width, max_width)
    wanted = per_step * mean_width
    return max(row, round(wanted / pack_width) * pack_width)  # the nearest whole number of rows


def small_batching(widths: list[int]) -> tuple[int, int]:
    """(batch_tokens, pack_width) of the first small steps: about TINY_BATCH examples a step."""
    mean_width = float(np.mean(widths)) if widths else 0.0
    pack_width = pack_width_for(TINY_BATCH, mean_width)
    return batch_tokens_for(TINY_BATCH, mean_width, pack_width, max(widths, default=0)), pack_width


def epochs_for(steps_per_epoch: int) -> float:
    """Passes so that the run makes at least MIN_STEPS updates and TARGET_EPOCHS passes, capped."""
    steps = max(MIN_STEPS, math.ceil(TARGET_EPOCHS * steps_per_epoch))
    return round(min(MAX_EPOCHS, steps / max(steps_per_epoch, 1)), 3)


def batch_plan(examples, config: TrainConfig):
    """The run's BatchPlan: its small first steps (config.small_steps) batched for TINY_BATCH examples."""
    from localsft.train.batching import BatchPlan

    return BatchPlan(examples, config, small_batching([e.width for e in examples]) if config.small_steps else None)


def size_config(config: TrainConfig, widths: list[int], steps_per_epoch, replay: int = 0,
                decided: dict | None = None) -> tuple[TrainConfig, Sizing]:
    """The config with every unset sized field decided from the training examples.

    widths: token positions of each training example (after truncation), replay rows included
    (`replay` of them: shown apart in the plan).
    steps_per_epoch(config): optimizer steps of one epoch under a config (the batch plan's count).
    decided: what the rule decided when the run began (a resume): those values, not today's rule.
    """
    n = len(widths)
    mean_width = float(np.mean(widths)) if widths else 0.0
    changes = {k: v for k, v in (decided or {}).items() if k in SIZED_FIELDS and getattr(config, k) is None}
    config = config.replace(**changes) if changes else config
    if config.lora_layers is None:
        changes["lora_layers"] = -1
    if config.learning_rate is None:
        changes["learning_rate"] = FULL_LEARNING_RATE if config.method == "full" else LEARNING_RATE
    if config.warmup_ratio is None:
        changes["warmup_ratio"] = FULL_WARMUP if config.method == "full" else 0.0
    per_step = examples_per_step(n)
    batch_sized = config.batch_tokens is None and config.batch_size is None
    if config.small_steps is None and batch_sized and per_step > TINY_BATCH:  # unset elsewhere: none
        changes["small_steps"] = SMALL_STEPS
    if config.pack_width is None:
        changes["pack_width"] = pack_width_for(per_step, mean_width)
    if config.batch_tokens is None:
        pack_width = changes.get("pack_width", config.pack_width)
        changes["batch_tokens"] = batch_tokens_for(per_step, mean_width, pack_width, max(widths, default=0))
    sized = config.replace(**changes) if changes else config
    if sized.epochs is None:
        epochs = 1.0 if config.iters else epochs_for(steps_per_epoch(sized))
        changes["epochs"] = epochs
        sized = sized.replace(epochs=epochs)
    sizing = Sizing(n - replay, mean_width, per_step, sorted(changes), replay=replay,
                    small_steps=sized.small_steps or 0)
    return sized, sizing


def describe(sizing: Sizing, steps: int, seconds: float) -> str:
    """"40 examples: 60 steps, about 4 minutes" and which settings were sized."""
    minutes = max(1, round(seconds / 60))
    what = f"{sizing.examples} examples"
    if sizing.replay:
        what += f" (+{sizing.replay} general ones, so it keeps what it knew)"
    what += f": {steps} steps"
    if sizing.small_steps >= steps:  # a short run (iters given) is all small steps
        what += f" of {TINY_BATCH} examples"
    elif sizing.small_steps:
        what += f" (the first {sizing.small_steps} of {TINY_BATCH} examples, then {sizing.examples_per_step})"
    what += f", about {minutes} minute{'s' if minutes > 1 else ''}"
    if sizing.sized:
        what += f" (sized to the data: {', '.join(sizing.sized)})"
    return what


def eval_every(total_steps: int, format_checked: bool = False) -> int:
    """Steps between validations: a fixed number per run, so validation cost follows run length;
    twice as many with a format check, whose early checks find the step the format is learned."""
    return max(1, math.ceil(total_steps / (FORMAT_EVALS_PER_RUN if format_checked else EVALS_PER_RUN)))


def validation_steps(total_steps: int, every: int, early: bool = False) -> list[int]:
    """The steps that validate: every `every`-th and the last; with `early` (and a wider spacing),
    every EARLY_EVERY-th up to EARLY_UNTIL in place of the regular ones there. At 2 examples per
    step the format was learned at step 5 (fixed-format), 10 (glossary) or 20 (brand-voice),
    whatever the run's length (measured on 157 rows in 200 steps: every 17th would have found it
    at 17, not 10)."""
    steps = set(range(every, total_steps + 1, every)) | {total_steps}
    if early and every > EARLY_EVERY:
        later = {s for s in steps if s >= EARLY_UNTIL + EARLY_EVERY}  # none right after the early ones
        steps = later | set(range(EARLY_EVERY, min(EARLY_UNTIL, total_steps) + 1, EARLY_EVERY)) | {total_steps}
    return sorted(s for s in steps if s > 0)


def validation_subset(lengths: list[int], cap: int = VALID_CAP) -> list[int]:
    """Indices of at most `cap` validation examples, spread evenly over the length order.

    Fixed (no randomness) so every evaluation scores the same rows; spread over lengths so the
    subset is as representative as the whole held-out split."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    if len(order) <= cap:
        return order
    return sorted(order[round(k * (len(order) - 1) / (cap - 1))] for k in range(cap))
