"""A training run is a folder; this module names its parts (the contract every tool reads).

    RUN/config.yaml          the full training config (one schema: localsft.train.config)
    RUN/events.jsonl         append-only event log, one JSON object per line
    RUN/data/                normalized chat JSONL splits (train/valid/test.jsonl) + report.json
    RUN/checkpoints/step-N/  resumable state (adapter weights, optimizer, step, data order, RNG)
    RUN/adapters/best/       mlx-lm adapter folder (adapters.safetensors + adapter_config.json)
    RUN/adapters/last/       same, for the last step
    RUN/eval.json, eval.md   held-out evaluation (localsft eval)
    RUN/votes.jsonl          blind A/B preferences
    RUN/exports/<format>/    exported models
    RUN/.lock                held while a process writes the run (localsft.runs.lock)
    RUN/train.log            the output of a training started from the studio
    RUN/STOP                 present: the trainer stops after its current step (with a checkpoint)
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from localsft.errors import UserError

STOP_FILE = "STOP"  # RUN/STOP asks the trainer for a clean stop after its current step
JOB_LOG = "train.log"  # the output of a training the studio started (localsft.runs.jobs)


def atomic_write_jsonl(path: Path, rows) -> None:
    """`rows` (dicts) as one JSON line each, written as `atomic_write_text` writes."""
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that a crash leaves either the old or the new content, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> "RunFolder":
        """An existing run folder, or a UserError saying why it is not one."""
        run = cls(Path(path).expanduser())
        if not run.config_path.exists():
            raise UserError(f"{run.path} is not a localsft run folder (no config.yaml).")
        return run

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def eval_json(self) -> Path:
        return self.path / "eval.json"

    @property
    def eval_md(self) -> Path:
        return self.path / "eval.md"

    @property
    def votes_path(self) -> Path:
        return self.path / "votes.jsonl"

    def adapters_dir(self, which: str = "best") -> Path:
        return self.path / "adapters" / which

    def exports_dir(self, fmt: str) -> Path:
        return self.path / "exports" / fmt

    def config_dict(self) -> dict:
        """config.yaml as a plain dict (use localsft.train.config for the typed object)."""
        return yaml.safe_load(self.config_path.read_text()) or {}

    def model_name(self) -> str | None:
        """The base model the run trained (store name or folder); None = the default model."""
        return self.config_dict().get("model")

    def instructions(self) -> str | None:
        """The system prompt every training example of the run began with (the recipe's or the
        app's instructions, or one the user's rows all shared); None when they differ or have none.

        The tuned model learned the task under it; without it a request is a general one (replay
        trains general requests without it), so chats that bring no system message get it."""
        train = self.data_dir / "train.jsonl"
        if not train.exists():
            return self.config_dict().get("system_prompt") or None
        found: set[str | None] = set()
        with open(train, encoding="utf-8") as fh:
            for line in fh:
                try:
                    messages = json.loads(line).get("messages") or [{}]
                except (ValueError, AttributeError):
                    continue
                first = messages[0] if isinstance(messages[0], dict) else {}
                found.add(first.get("content") if first.get("role") == "system" else None)
                if len(found) > 1:
                    return None
        text = next(iter(found), None)
        return text if isinstance(text, str) and text.strip() else None

    def best_adapter(self) -> Path:
        """The adapter folder to use: best if present, else last."""
        for which in ("best", "last"):
            folder = self.adapters_dir(which)
            if (folder / "adapters.safetensors").exists():
                return folder
        raise UserError(f"Run {self.name} has no trained adapter yet (nothing in {self.path / 'adapters'}).")

    def events(self) -> list[dict]:
        """All events logged so far (see read_events)."""
        return read_events(self.events_path)


def read_events(path: Path) -> list[dict]:
    """The objects of an append-only JSON-lines log (events, votes, corrections): a torn last line
    from a crash, or any line that is not an object, is skipped; [] when there is no such file."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            out.append(event)
    return out
