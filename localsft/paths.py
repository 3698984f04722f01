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


def models_dir() -> Path:
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def uploads_dir() -> Path:
    path = home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path
