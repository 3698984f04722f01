"""Time left for the Train tab: smoothed, still moving while the trainer validates or saves.

Rebuilt from the run's event log alone (every event carries its Unix `time`), so a reload shows
the same estimate. The trainer's own `eta_s` averages over the whole session, first compile and
the base model's validation included, so it falls 2-3x over the first steps; here the seconds per
step are an exponential average of the measured steps, started from the plan's estimate, and the
first steps are shown as a range.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

SMOOTHING = 0.25  # weight of the newest step interval in the average
RANGE_UNTIL = 5  # measured steps before a single figure is shown instead of a range
OVERDUE = 1.5  # a step taking this many times the average is something else: validation or saving


@dataclass
class Estimate:
    """What the Train tab says about the time left."""

    seconds: float | None  # best guess of the time left, counted down from the last step
    low: float | None  # a range while few steps are measured
    high: float | None
    phase: str  # "training", "checking progress…", "saving…"

    def describe(self) -> str:
        if self.seconds is None:
            return self.phase
        if self.low is not None and self.high is not None and self.high - self.low >= 60:
            left = f"about {_minutes(self.low)}-{_minutes(self.high)} min left"
        else:
            left = f"about {duration(self.seconds)} left" if self.seconds >= 1 else "almost done"
        return left if self.phase == "training" else f"{self.phase} ({left})"


def duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _minutes(seconds: float) -> int:
    return max(1, int(round(seconds / 60)))


def seconds_per_step(events: list[dict]) -> tuple[float | None, int]:
    """(seconds per step, number of measured steps) from the step events' times.

    Ordinary steps feed an exponential average; a step that took far longer (a validation, a
    checkpoint) adds its extra time spread over all steps so far, so that one slow step moves
    the estimate a little instead of doubling it.
    """
    started = next((e for e in events if e.get("type") == "started"), None)
    rate = started["est_seconds"] / started["steps"] if started and started.get("steps") and started.get("est_seconds") else None
    steps = [e for e in events if e.get("type") == "step" and "time" in e]
    measured, extra = 0, 0.0
    for before, after in zip(steps, steps[1:]):
        span = after["step"] - before["step"]
        if span <= 0:
            continue  # a resumed run starts counting again
        interval = (after["time"] - before["time"]) / span
        if rate is not None and interval > OVERDUE * rate and measured:
            extra += (interval - rate) * span
        else:
            rate = interval if rate is None else (1 - SMOOTHING) * rate + SMOOTHING * interval
        measured += 1
    if rate is None:
        return None, measured
    return rate + extra / max(measured, 1), measured


def _phase(events: list[dict], rate: float | None, now: float) -> str:
    """What the trainer is doing: a step taking far longer than usual is validation or saving."""
    steps = [e for e in events if e.get("type") == "step"]
    if not steps or rate is None:
        return "training"
    kind = events[-1].get("type")
    overdue = now - steps[-1].get("time", now) > OVERDUE * rate
    at_end = steps[-1]["step"] >= steps[-1].get("steps", 0)
    if kind == "step" and overdue:
        return "checking progress…" if _validates(events) else "saving…"
    if kind in ("eval", "sample") and (overdue or at_end):
        return "saving…"
    return "training"


def _validates(events: list[dict]) -> bool:
    return any(e.get("type") == "eval" for e in events) or any(
        e.get("valid_examples") for e in events if e.get("type") == "started")


def estimate(events: list[dict], now: float | None = None) -> Estimate:
    """The time left of a running training, from its events so far."""
    now = time.time() if now is None else now
    rate, measured = seconds_per_step(events)
    step_events = [e for e in events if e.get("type") == "step"]
    phase = _phase(events, rate, now)
    if rate is None:
        return Estimate(None, None, None, "starting…")
    if not step_events:
        started = next((e for e in events if e.get("type") == "started"), {})
        left = started.get("est_seconds")
        return Estimate(left, left * 0.7 if left else None, left * 2.0 if left else None, "training")
    last = step_events[-1]
    left = rate * max(last.get("steps", 0) - last["step"], 0) - (now - last.get("time", now))
    left = max(left, 0.0)
    if measured < RANGE_UNTIL:
        return Estimate(left, left * 0.7, left * 2.0, phase)
    return Estimate(left, None, None, phase)

