"""Which checkpoint a run with a format check keeps: format first, then closeness, without chasing noise."""

from __future__ import annotations

from localsft.train.format_watch import is_better

ONE_OF_8 = 1 / 8


def best_step(validations: list[tuple[int, float | None, float]]) -> int:
    """The step kept, applying the rule as the training loop does (top = highest adherence so far)."""
    best = top = best_loss = None
    for step, adherence, loss in validations:
        if is_better(adherence, loss, top, best_loss, ONE_OF_8):
            best, best_loss = step, loss
        if adherence is not None:
            top = max(adherence, top or 0.0)
    return best


def test_one_answer_out_of_format_does_not_keep_an_undertrained_checkpoint():
    # measured on fixed-format, 40 rows: step 5 had 8 of 8 in format but answered one label to all
    run = [(0, None, 1.84), (5, 1.0, 0.78), (10, 0.5, 0.54), (15, 0.875, 0.24), (20, 0.875, 0.30)]
    assert best_step(run) == 15


def test_clearly_better_format_wins_over_a_lower_loss():
    assert best_step([(0, None, 1.8), (5, 0.25, 0.40), (10, 1.0, 0.55)]) == 10
    assert best_step([(0, None, 1.8), (5, 1.0, 0.40), (10, 0.5, 0.20)]) == 5  # lost the format


def test_the_format_cannot_drift_down_one_answer_at_a_time():
    run = [(5, 1.0, 0.5), (10, 0.875, 0.4), (15, 0.75, 0.3), (20, 0.625, 0.2)]
    assert best_step(run) == 10  # each step is one answer below the last, but 15 is two below the top


def test_a_run_without_a_format_check_keeps_the_lowest_loss():
    assert best_step([(0, None, 1.8), (5, None, 0.9), (10, None, 1.1)]) == 5
