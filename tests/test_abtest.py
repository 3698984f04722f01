"""Blind A/B votes: random order, stored in the run, win rate with a Wilson interval."""

from __future__ import annotations

import random

import pytest
import yaml

from localsft.evaluation.abtest import make_pair, read_votes, record_vote, wilson_interval, win_rate
from localsft.errors import UserError
from localsft.runs.folder import RunFolder


@pytest.fixture
def run(tmp_path) -> RunFolder:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": "x"}))
    return RunFolder.open(tmp_path)


def test_pairs_hide_the_sides_in_random_order():
    rng = random.Random(0)
    pairs = [make_pair("Tagline?", "base answer", "tuned answer", rng) for _ in range(40)]
    assert {p.a_side for p in pairs} == {"base", "tuned"}
    for p in pairs:
        answers = {p.a_side: p.a, p.b_side: p.b}
        assert answers == {"base": "base answer", "tuned": "tuned answer"}
    assert len({p.id for p in pairs}) == 40


def test_votes_are_stored_in_the_run_with_the_winning_side(run):
    pair = make_pair("Tagline?", "b", "t", random.Random(1))
    vote = record_vote(run, pair, "A")
    assert vote["winner"] == pair.a_side
    record_vote(run.path, pair, "tie")
    stored = read_votes(run)
    assert [v["winner"] for v in stored] == [pair.a_side, "tie"]
    assert stored[0]["prompt"] == [{"role": "user", "content": "Tagline?"}]
    with pytest.raises(UserError, match="A, B, tie"):
        record_vote(run, pair, "C")


def test_win_rate_counts_ties_as_half(run):
    rng = random.Random(2)
    for choice_side in ["tuned"] * 6 + ["base"] * 2 + ["tie"] * 2:
        pair = make_pair("q", "b", "t", rng)
        choice = "tie" if choice_side == "tie" else ("A" if pair.a_side == choice_side else "B")
        record_vote(run, pair, choice)
    rate = win_rate(run)
    assert (rate.tuned_wins, rate.base_wins, rate.ties, rate.votes) == (6, 2, 2, 10)
    assert rate.rate == pytest.approx(0.7)
    assert rate.low < 0.7 < rate.high
    assert "70% of 10 votes" in rate.describe()


def test_wilson_interval_known_values():
    # 7 of 10 at 95%: the textbook Wilson interval is about (0.397, 0.892)
    low, high = wilson_interval(7, 10)
    assert low == pytest.approx(0.3968, abs=1e-3) and high == pytest.approx(0.8922, abs=1e-3)
    # all wins: the upper bound is 1, the lower bound well below it for few votes
    low, high = wilson_interval(3, 3)
    assert high == pytest.approx(1.0) and low == pytest.approx(0.4385, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    narrow = wilson_interval(700, 1000)
    assert narrow[1] - narrow[0] < 0.06


def test_no_votes_yet(run):
    rate = win_rate(run)
    assert rate.rate is None and rate.votes == 0 and rate.describe() == "no votes yet"
