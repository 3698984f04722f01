"""Who is writing a run folder, and which training runs on this machine: fcntl locks.

A lock is an open file with an exclusive `flock` on it, plus a line of JSON saying who
holds it (pid, what it does, which run). The OS drops the lock when the process ends,
however it ends (SIGKILL included), so a lock never outlives its holder and nothing has
to guess from pids whether a run is still alive.

    RUN/.lock               held while anything writes the run (training, export, delete)
    <home>/training.lock    held by the one training of this machine (CLI or studio)
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from localsft import paths
from localsft.errors import UserError

RUN_LOCK = ".lock"
TRAINING_LOCK = "training.lock"


@dataclass(frozen=True)
class Holder:
    """What a lock file says about the process holding it."""

    pid: int
    what: str  # training, exporting, deleting
    run_dir: Path
    since: float


class Lock:
    """A held lock; released by `release()`, by leaving a `with` block, or by the process ending."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_lock(path: Path, what: str, run_dir: str | Path) -> Lock | None:
    """Take the lock at `path` without waiting; None when another holder has it.

    A reader (`holder`) takes a shared lock for an instant, so a refusal is retried
    for a fifth of a second before it counts.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    for attempt in range(10):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == 9:
                os.close(fd)
                return None
            time.sleep(0.02)
    info = {"pid": os.getpid(), "what": what, "run_dir": str(Path(run_dir).resolve()), "since": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    return Lock(path, fd)


def _read(fd: int) -> Holder | None:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return Holder(int(info.get("pid", 0)), str(info.get("what", "starting")),
                      Path(info.get("run_dir", "")), float(info.get("since", 0)))
    except (ValueError, TypeError, AttributeError):
        return Holder(0, "starting", Path(""), 0.0)  # being written by its new holder right now


def holder(path: Path) -> Holder | None:
    """Who holds the lock at `path` now; None when nobody does (or there is no such file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def run_holder(run_dir: str | Path) -> Holder | None:
    """Who is writing this run folder now, or None."""
    return holder(Path(run_dir) / RUN_LOCK)


def training_holder() -> Holder | None:
    """The training that runs on this machine now (started from the CLI or the studio), or None."""
    return holder(paths.home() / TRAINING_LOCK)


def busy_message(name: str, found: Holder) -> str:
    """The plain sentence for a run that another process is writing."""
    doing = {"training": "being trained", "exporting": "being exported", "deleting": "being deleted"}
    pid = f" (process {found.pid})" if found.pid else ""
    return (f"Run {name} is {doing.get(found.what, 'in use')} right now{pid}. "
            f"Wait for it to end, or stop it first.")


def lock_run(run_dir: str | Path, what: str) -> Lock:
    """Lock a run folder for writing; UserError saying who has it when another process does."""
    run_dir = Path(run_dir)
    lock = try_lock(run_dir / RUN_LOCK, what, run_dir)
    if lock is None:
        raise UserError(busy_message(run_dir.name, run_holder(run_dir) or Holder(0, what, run_dir, 0)))
    return lock


def lock_training(run_dir: str | Path) -> Lock:
    """Claim this machine's one training; UserError naming the running one when taken."""
    lock = try_lock(paths.home() / TRAINING_LOCK, "training", run_dir)
    if lock is None:
        running = training_holder()
        name = running.run_dir.name if running and running.run_dir.name else "another run"
        raise UserError(f"A training is already running on this machine (run {name}). Stop it or wait for "
                        f"it to finish before starting another; only one runs at a time.")
    return lock


def writes_run(what: str):
    """Decorator: the function's first argument is a run folder that it writes; it runs holding
    the folder's lock (refused with a plain message while another process writes the run)."""
    def decorate(fn):
        @functools.wraps(fn)
        def locked(run_dir, *args, **kwargs):
            if not Path(run_dir).expanduser().is_dir():
                return fn(run_dir, *args, **kwargs)  # not a folder: the function says so plainly
            with lock_run(Path(run_dir).expanduser(), what):
                return fn(run_dir, *args, **kwargs)
        return locked
    return decorate
