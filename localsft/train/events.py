"""Typed training events, and the run's append-only event log (one JSON line per event).

The UI follows RUN/events.jsonl; every line has a "type" and a "time" (Unix seconds).
"""

from __future__ import annotations

import json
import time as _time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar


@dataclass
class Event:
    type: ClassVar[str] = "event"
    time: float = field(default_factory=_time.time, kw_only=True)

    def to_dict(self) -> dict:
        return {"type": self.type, **asdict(self)}


@dataclass
class Started(Event):
    """The plan, before the first step."""

    type: ClassVar[str] = "started"
    run: str
    model: str
    precision: str
    method: str
    steps: int
    epochs: float
    train_examples: int
    valid_examples: int
    tokens_per_epoch: int
    trainable_params: int
    est_seconds: float
    est_memory_mb: float
    available_memory_mb: float
    resumed_from_step: int = 0
    sizing: dict | None = None  # what sizing.py decided: examples, examples_per_step, sized settings, summary


@dataclass
class Step(Event):
    type: ClassVar[str] = "step"
    step: int
    steps: int
    epoch: float
    loss: float
    learning_rate: float
    tokens_per_s: float
    trained_tokens: int
    peak_memory_mb: float
    elapsed_s: float
    eta_s: float


@dataclass
class Eval(Event):
    type: ClassVar[str] = "eval"
    step: int
    val_loss: float
    best_val_loss: float
    improved: bool
    format_adherence: float | None = None  # share of held-out answers in the recipe's format, when checked
    preference_accuracy: float | None = None  # preference runs: share of held-out pairs ranked right


@dataclass
class Sample(Event):
    """The current model's answers to a few fixed held-out prompts."""

    type: ClassVar[str] = "sample"
    step: int
    samples: list  # [{"prompt": str, "answer": str, "reference": str}]


@dataclass
class Checkpoint(Event):
    type: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass
class EarlyStopped(Event):
    type: ClassVar[str] = "early_stopped"
    step: int
    best_step: int
    best_val_loss: float


@dataclass
class Health(Event):
    """The check after training (evaluation/degenerate.py): do held-out answers look like answers?"""

    type: ClassVar[str] = "health"
    ok: bool
    summary: str  # one plain line, with the likely fix when not ok
    problems: list = field(default_factory=list)
    path: str = ""  # RUN/health.json, with every answer looked at


@dataclass
class Finished(Event):
    type: ClassVar[str] = "finished"
    step: int
    best_val_loss: float | None
    adapters: str
    run_dir: str
    seconds: float


@dataclass
class Failed(Event):
    type: ClassVar[str] = "failed"
    reason: str
    step: int = 0


@dataclass
class ResumeFailed(Event):
    """A resume that could not begin (before its plan): the run stays as it was."""

    type: ClassVar[str] = "resume_failed"
    reason: str


@dataclass
class Diverged(Event):
    """The loss grew instead of falling, so training stopped."""

    type: ClassVar[str] = "diverged"
    reason: str
    step: int
    val_loss: float | None = None
    base_val_loss: float | None = None


@dataclass
class Stopped(Event):
    type: ClassVar[str] = "stopped"
    step: int
    checkpoint: str


class EventLog:
    """Appends events to a JSONL file, flushed per event, and forwards them to a callback."""

    def __init__(self, path: Path | None, on_event=None) -> None:
        self.path = path
        self.on_event = on_event
        self._fh = open(path, "a") if path is not None else None

    def emit(self, event: Event) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(event.to_dict()) + "\n")
            self._fh.flush()
        if self.on_event is not None:
            self.on_event(event)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
