"""Blind A/B test: which answer does the user prefer, without knowing which model wrote it?

    pair = new_pair(switchable, "Write a tagline for our shoes")   # answers in random order
    ... show pair.a and pair.b, the user picks "A", "B" or "tie" ...
    record_vote(run, pair, "A")                                    # appended to RUN/votes.jsonl
    win_rate(run)   # WinRate(tuned_wins=..., rate=0.7, low=0.48, high=0.85, ...)

The win rate is the share of votes won by the tuned model (a tie counts half), with a
Wilson score interval, which stays sensible for the handful of votes a person gives.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

from localsft.errors import UserError
from localsft.runs.folder import RunFolder, read_events

CHOICES = ("A", "B", "tie")


@dataclass
class BlindPair:
    """Two answers to one prompt, labelled A and B; `a_side` (hidden from the voter) says whose A is."""

    id: str
    prompt: list[dict]
    a: str
    b: str
    a_side: str  # "base" or "tuned"

    @property
    def b_side(self) -> str:
        return "base" if self.a_side == "tuned" else "tuned"


def _as_messages(prompt: str | list[dict]) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def make_pair(prompt: str | list[dict], base_answer: str, tuned_answer: str,
              rng: random.Random | None = None) -> BlindPair:
    """A blind pair from two answers, shown in random order."""
    a_side = (rng or random.SystemRandom()).choice(("base", "tuned"))
    a, b = (tuned_answer, base_answer) if a_side == "tuned" else (base_answer, tuned_answer)
    return BlindPair(uuid.uuid4().hex[:12], _as_messages(prompt), a, b, a_side)


def new_pair(switchable, prompt: str | list[dict], settings=None,
             rng: random.Random | None = None) -> BlindPair:
    """Answer `prompt` with base and tuned (one batch) and return the answers as a blind pair.

    switchable: the run's loaded model (`localsft.inference.switch.load_switchable(run)`,
    or `CompareChat.switchable`).
    """
    from localsft.inference.side_by_side import answer_sides

    answers = answer_sides(switchable, _as_messages(prompt), settings)
    return make_pair(prompt, answers["base"], answers["tuned"], rng)


def winner(pair: BlindPair, choice: str) -> str:
    """"base", "tuned" or "tie" for a vote on `pair`."""
    if choice not in CHOICES:
        raise UserError(f"A vote must be one of {', '.join(CHOICES)}, not {choice!r}.")
    return {"A": pair.a_side, "B": pair.b_side, "tie": "tie"}[choice]


def record_vote(run: RunFolder | str | Path, pair: BlindPair, choice: str) -> dict:
    """Append the vote (with both answers and who wrote which) to RUN/votes.jsonl; returns it."""
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    vote = {"id": pair.id, "time": time.time(), "prompt": pair.prompt, "a": pair.a, "b": pair.b,
            "a_side": pair.a_side, "choice": choice, "winner": winner(pair, choice)}
    with open(run.votes_path, "a", encoding="utf-8") as fh:  # one short line: appends do not interleave
        fh.write(json.dumps(vote, ensure_ascii=False) + "\n")
    return vote


def read_votes(run: RunFolder | str | Path) -> list[dict]:
    """Every vote recorded in the run (a torn last line is skipped)."""
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    return read_events(run.votes_path)


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion `successes / n` (0..1 bounds; (0, 1) when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, center - half), min(1.0, center + half)


@dataclass
class WinRate:
    """How often the tuned model's answer was preferred."""

    tuned_wins: int
    base_wins: int
    ties: int
    rate: float | None  # (tuned wins + ties / 2) / votes; None without votes
    low: float
    high: float
    confidence: float

    @property
    def votes(self) -> int:
        return self.tuned_wins + self.base_wins + self.ties

    def describe(self) -> str:
        if self.rate is None:
            return "no votes yet"
        return (f"tuned preferred {self.rate:.0%} of {self.votes} votes "
                f"({self.confidence:.0%} interval {self.low:.0%}-{self.high:.0%}; "
                f"{self.tuned_wins} tuned, {self.base_wins} base, {self.ties} ties)")


def win_rate(run: RunFolder | str | Path | list[dict], confidence: float = 0.95) -> WinRate:
    """The tuned model's win rate over the run's votes (or a list of votes)."""
    votes = run if isinstance(run, list) else read_votes(run)
    tuned = sum(v["winner"] == "tuned" for v in votes)
    base = sum(v["winner"] == "base" for v in votes)
    ties = sum(v["winner"] == "tie" for v in votes)
    n = tuned + base + ties
    successes = tuned + ties / 2
    low, high = wilson_interval(successes, n, confidence)
    return WinRate(tuned, base, ties, successes / n if n else None, low, high, confidence)
