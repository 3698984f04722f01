"""One line per run for `localsft runs` and the UI, rebuilt from the run folder alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from localsft import paths
from localsft.runs.folder import RunFolder

ENDINGS = {"finished": "finished", "early_stopped": "finished", "failed": "failed", "stopped": "stopped"}


@dataclass
class RunSummary:
    name: str
    path: Path
    model: str
    status: str  # finished, failed, stopped, running (or interrupted: resume it)
    best_val_loss: float | None
    step: int
    steps: int
    started: str  # local date and time


def summarize(run: RunFolder) -> RunSummary:
    events = run.events()
    status, step, steps, best = "not started", 0, 0, None
    for event in events:
        kind = event.get("type")
        if kind == "started":
            status, steps = "running", event.get("steps", 0)
        elif kind == "step":
            step = event.get("step", step)
        elif kind == "eval":
            best = event.get("best_val_loss", best)
        if kind in ENDINGS:
            status = ENDINGS[kind]
    when = events[0]["time"] if events else run.config_path.stat().st_mtime
    return RunSummary(run.name, run.path, Path(run.model_name() or paths.DEFAULT_MODEL).name, status,
                      best, step, steps, datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M"))


def list_runs(root: Path | None = None) -> list[RunSummary]:
    """Every run under the runs store, newest first."""
    root = root or paths.runs_dir()
    runs = [RunFolder(p) for p in root.iterdir() if (p / "config.yaml").exists()]
    return sorted((summarize(r) for r in runs), key=lambda s: s.started, reverse=True)
