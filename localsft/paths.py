"""Where localsft keeps things: one home folder, `~/.localsft` or `$LOCALSFT_HOME`."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "SmolLM2-135M-Instruct"


def home() -> Path:
    """The localsft home folder (created on first use)."""
    root = Path(os.environ.get("LOCALSFT_HOME") or Path.home() / ".localsft").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _folder(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """One MLX model folder per stored model."""
    return _folder("models")


def runs_dir() -> Path:
    """One folder per training run."""
    return _folder("runs")


def uploads_dir() -> Path:
    """Files uploaded through the app."""
    return _folder("uploads")


def cache_dir() -> Path:
    """What localsft can make again, kept to save time (e.g. a base model's replay answers)."""
    return _folder("cache")
