"""Fill jobs for the app: one fill per machine, in a child process running `localsft fill`.

Like training (localsft.runs.jobs), the child runs the command a user would type, so a
crash cannot take the app down; `<home>/fill/job.json` names it (pid, files), which is how
a reload or a second tab finds it again. The child writes its progress to a JSON file
after every batch; the filled file itself is always complete up to the last batch.

    job = start_fill("my-run", "uploads/new.xlsx")
    state = fill_state()      # rows done, rows/s, time left, status, the file
    stop_fill()               # the rows written so far stay; resume continues
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localsft import paths
from localsft.errors import UserError
from localsft.runs.folder import atomic_write_text
from localsft.runs.jobs import _alive  # the one liveness check (reaps our finished children)

_children: dict[int, subprocess.Popen] = {}  # this process's fill children, reaped when polled


@dataclass
class FillJob:
    """A fill process and the files it writes."""

    pid: int
    target: str
    data: str
    out: str
    started: float
    command: list[str] = field(default_factory=list)


def _folder() -> Path:
    folder = paths.home() / "fill"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _job_file() -> Path:
    return _folder() / "job.json"


def progress_file() -> Path:
    return _folder() / "progress.json"


def log_file() -> Path:
    return _folder() / "fill.log"


def last_job() -> FillJob | None:
    """The latest fill started on this machine (running or not)."""
    try:
        return FillJob(**json.loads(_job_file().read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def running_job() -> FillJob | None:
    job = last_job()
    if job is None:
        return None
    child = _children.get(job.pid)
    alive = child.poll() is None if child is not None else _alive(job.pid)
    return job if alive else None


def fill_command(target: str, data: str | Path, out: str | Path, with_base: bool = False,
                 max_tokens: int = 256, temperature: float = 0.0, resume: bool = False) -> list[str]:
    """The `localsft fill` command line for this job (exactly what a user could type)."""
    cmd = [sys.executable, "-m", "localsft", "fill", target, "--data", str(data), "--out", str(out),
           "--max-tokens", str(int(max_tokens)), "--temperature", f"{float(temperature):g}",
           "--progress-file", str(progress_file())]
    return cmd + (["--with-base"] if with_base else []) + (["--resume"] if resume else [])


def start_fill(target: str, data: str | Path, out: str | Path | None = None, **options) -> FillJob:
    """Start `localsft fill` in a child process; UserError when a fill is already running.

    An existing output file of the same inputs is resumed (it is one this app wrote).
    """
    from localsft.fill.output import default_output

    if running_job() is not None:
        raise UserError("A fill is already running; stop it or wait for it to finish.")
    data = Path(data)
    out = Path(out) if out else default_output(data)
    cmd = fill_command(target, data, out, resume=out.exists(), **options)
    progress_file().unlink(missing_ok=True)
    with open(log_file(), "wb") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    _children[child.pid] = child
    job = FillJob(child.pid, target, str(data), str(out), time.time(), cmd)
    atomic_write_text(_job_file(), json.dumps(asdict(job)))
    return job


def stop_fill() -> FillJob | None:
    """Stop the running fill (SIGTERM: the child ends after writing what it has); None if none runs."""
    job = running_job()
    if job is not None:
        try:
            os.kill(job.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return job


def fill_state() -> dict | None:
    """The latest fill: status (running, finished, stopped, failed), rows, speed, time left, file, message."""
    job = last_job()
    if job is None:
        return None
    try:
        progress = json.loads(progress_file().read_text())
    except (FileNotFoundError, ValueError):
        progress = {}
    state = {"target": job.target, "data": job.data, "out": job.out, "done": progress.get("done", 0),
             "total": progress.get("total"), "rows_per_s": progress.get("rows_per_s"),
             "seconds_left": progress.get("seconds_left"), "message": ""}
    if running_job() is not None:
        return {**state, "status": "running"}
    log = log_file().read_text(errors="replace") if log_file().exists() else ""
    if "filled: " in log:
        return {**state, "status": "finished"}
    errors = [line[len("error: "):] for line in log.splitlines() if line.startswith("error: ")]
    if errors:
        return {**state, "status": "failed", "message": errors[-1]}
    return {**state, "status": "stopped", "message": "Stopped; the rows answered so far are in the file."}
