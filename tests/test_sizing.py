"""The sizing rule: what a user with 30, 40, 120 or 400 examples gets when they set nothing."""

from __future__ import annotations

import numpy as np
import pytest

from localsft.train.batching import BatchPlan, Example
from localsft.train.config import TrainConfig
from localsft.train.sizing import MIN_STEPS, batch_plan, describe, size_config, validation_steps, validation_subset


def _examples(n: int, width: int = 60, seed: int = 0) -> list[Example]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.integers(width - 15, width + 15)) + 1
        mask = np.zeros(length, bool)
        mask[length // 2:] = True
        out.append(Example(np.arange(length, dtype=np.int32), mask))
    return out


def _sized(n: int, config: TrainConfig | None = None, width: int = 60):
    examples = _examples(n, width)
    config, sizing = size_config(config or TrainConfig(), [e.width for e in examples],
                                 lambda c: BatchPlan(examples, c).steps_per_epoch())
    plan = batch_plan(examples, config)
    return config, sizing, plan.total_steps(), plan.steps_per_epoch()


@pytest.mark.parametrize("n, steps, epochs, per_step, small", [
    (30, (MIN_STEPS, MIN_STEPS + 8), (3, 8.01), 2, 0),   # a floor of updates: 60 small steps, many passes
    (40, (MIN_STEPS, MIN_STEPS + 8), (2.5, 8.01), 2, 0),
    (120, (MIN_STEPS, 70), (2, 3.5), 4, 10),             # 10 steps of 2 examples, then 2-3 passes
    (400, (90, 130), (2, 2.01), 8, 10),                  # no wasted epochs: 2 passes, bigger batches
])
def test_unset_settings_follow_the_number_of_examples(n, steps, epochs, per_step, small):
    config, sizing, total, per_epoch = _sized(n)
    assert (config.small_steps or 0) == sizing.small_steps == small
    assert steps[0] <= total - small <= steps[1]
    assert epochs[0] <= (total - small) / per_epoch <= epochs[1]
    assert sizing.examples_per_step == per_step
    assert config.lora_layers == -1 and config.lora_keys is None  # every linear layer of every block
    assert config.learning_rate == pytest.approx(1e-4) and config.warmup_ratio == 0.0  # LoRA: no warmup
    assert sorted(sizing.sized) == sorted(["batch_tokens", "epochs", "learning_rate", "lora_layers", "pack_width",
                                           "warmup_ratio"] + (["small_steps"] if small else []))


def test_larger_sets_begin_with_small_steps():
    """The format comes after so many updates (5-20 steps of 2 examples), not so many examples: a
    set of 100+ examples makes its first 10 steps of 2 examples, then its larger ones."""
    examples = _examples(200)
    config, sizing = size_config(TrainConfig(), [e.width for e in examples],
                                 lambda c: BatchPlan(examples, c).steps_per_epoch())
    plan = batch_plan(examples, config)
    small, first = plan.epoch(BatchPlan.SMALL), plan.epoch(0)
    per_step = [sum(len(row) for row in rows) for rows in small]
    assert len(small) == 10 and all(1 <= k <= 3 for k in per_step) and sum(per_step) >= 18
    assert sum(len(row) for rows in first for row in rows) == 200  # then whole epochs, in larger steps
    assert 200 / len(first) >= 6
    assert plan.total_steps() == 10 + round(config.epochs * plan.steps_per_epoch())
    assert plan.first_epoch() == BatchPlan.SMALL
    assert "the first 10 of 2 examples, then 8" in describe(sizing, plan.total_steps(), 300)
    assert ": 4 steps of 2 examples, about" in describe(sizing, 4, 30)  # a run of 4 (iters=4): no larger step
    for given in (TrainConfig(batch_tokens=512), TrainConfig(small_steps=0)):  # a batch or a count given: as given
        config, sizing = size_config(given, [e.width for e in examples],
                                     lambda c: BatchPlan(examples, c).steps_per_epoch())
        assert not config.small_steps and batch_plan(examples, config).first_epoch() == 0


def test_full_fine_tuning_keeps_a_warmup():
    config, *_ = _sized(40, TrainConfig(method="full"))
    assert config.warmup_ratio == pytest.approx(0.05) and config.learning_rate == pytest.approx(1e-5)


def test_a_setting_the_user_gave_wins():
    config, sizing, total, per_epoch = _sized(40, TrainConfig(epochs=2, learning_rate=1e-4, lora_layers=8,
                                                             batch_tokens=1024, pack_width=256, warmup_ratio=0.1))
    assert (config.epochs, config.learning_rate, config.lora_layers, config.batch_tokens) == (2, 1e-4, 8, 1024)
    assert sizing.sized == [] and total == 2 * per_epoch
    config, sizing, total, _ = _sized(40, TrainConfig(iters=7))
    assert total == 7 and "epochs" in sizing.sized  # iters decides the length; the rest is still sized


def test_the_old_fixed_defaults_gave_a_40_row_set_too_few_updates():
    old = TrainConfig(epochs=3, learning_rate=2e-4, lora_layers=16, batch_tokens=1024)
    _, _, old_steps, _ = _sized(40, old)
    _, _, new_steps, _ = _sized(40)
    assert old_steps <= 12 and new_steps >= MIN_STEPS  # the issue: 9 steps, and a looping model


def test_long_examples_still_get_small_batches():
    config, sizing, total, per_epoch = _sized(40, width=700)
    assert config.batch_tokens >= 700 and total >= MIN_STEPS


def test_validation_subset_is_fixed_capped_and_spread_over_lengths():
    lengths = list(range(100, 0, -1))
    subset = validation_subset(lengths, cap=10)
    assert len(subset) == 10 and subset == validation_subset(lengths, cap=10)
    picked = sorted(lengths[i] for i in subset)
    assert picked[0] == 1 and picked[-1] == 100  # shortest and longest both in
    assert validation_subset([5, 3], cap=10) == [1, 0]


def test_very_short_examples_come_a_few_per_step_not_twenty():
    config, sizing, total, per_epoch = _sized(40, width=14)
    assert config.pack_width == 64 and per_epoch >= 8 and total >= MIN_STEPS


def test_a_long_run_with_a_format_check_still_validates_every_5_steps_at_first():
    # where the format is learned (steps 5-20 at 2 examples a step), whatever the run's length
    assert validation_steps(200, 17, early=True)[:6] == [5, 10, 15, 20, 34, 51]
    assert validation_steps(200, 17)[:2] == [17, 34]  # no format check: the regular spacing only
    assert validation_steps(60, 5, early=True) == list(range(5, 61, 5))
    assert validation_steps(12, 1, early=True) == list(range(1, 13))  # a finer spacing is kept
    assert validation_steps(18, 6, early=True) == [5, 10, 15, 18]  # the last step always
    assert validation_steps(248, 21, early=True)[:6] == [5, 10, 15, 20, 42, 63]  # not 20 and 21
