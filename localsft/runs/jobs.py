"""Training jobs for the app: one training per machine, in a child process, followed by its event log.

The child runs the same command a user would type (`python -m localsft train --config
RUN/config.yaml --out RUN`), so the app and the CLI share one code path and a crash or
out-of-memory in training never takes the app down. The config is built and checked in
the app's process and handed over as that file. Which training runs, and which run folder
it writes, comes from the trainer's own locks (localsft.runs.lock): a training started
from the CLI is the running job for the app too, and a killed one is gone at once.

    job = start_training(config)            # config: a checked TrainConfig
    progress = read_progress(job.run_dir)   # localsft.runs.status: steps, losses, ETA, status
    stop_training()                         # a clean stop at the next step (RUN/STOP)
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localsft import paths
from localsft.errors import UserError
from localsft.runs.folder import JOB_LOG as LOG_FILE, STOP_FILE, RunFolder, read_events
from localsft.runs.lock import busy_message, lock_run, run_holder, training_holder

START_LOCK = "starting.lock"  # one Start at a time, until its child holds the training lock
START_TIMEOUT_S = 60.0

# The processes this app process started, by pid, so that finished children are reaped
# (a child that has exited stays a zombie until its parent waits for it).
# Deliberately global: one training per machine.
_children: dict[int, subprocess.Popen] = {}


@dataclass
class Job:
    """A training process and the run folder it writes."""

    pid: int
    run_dir: Path
    started: float

    @property
    def name(self) -> str:
        return self.run_dir.name


def _reap() -> None:
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]


def current_job() -> Job | None:
    """The training running on this machine (started by the CLI, any app or tab), or None."""
    _reap()
    found = training_holder()
    return Job(found.pid, found.run_dir, found.since) if found else None


def is_running(run_dir: str | Path) -> bool:
    """Whether a training process writes this run folder now."""
    found = run_holder(run_dir)
    return found is not None and found.what == "training"


def train_command(run_dir: Path, *, config_file: Path | None = None, resume: bool = False) -> list[str]:
    """The `localsft train` command line for this job (exactly what a user could type)."""
    cmd = [sys.executable, "-m", "localsft", "train"]
    if resume:
        return cmd + ["--resume", str(run_dir)]
    return cmd + ["--config", str(config_file), "--out", str(run_dir)]


def new_run_dir(model: str | None = None) -> Path:
    """A fresh run folder under the runs store, named as the trainer names them."""
    from localsft.train.config import TrainConfig
    from localsft.train.loop import new_run_dir as trainer_run_dir

    return trainer_run_dir(TrainConfig(model=model))


@contextmanager
def _one_start():
    """Starts wait for each other here, so two clicks cannot both pass the 'nothing runs' check."""
    with open(paths.home() / START_LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _refuse_if_busy(run_dir: Path | None) -> None:
    running = current_job()
    if running is not None:
        raise UserError(f"A training is already running (run {running.name}). Stop it or wait for it to "
                        f"finish before starting another; only one runs at a time.")
    if run_dir is not None and (found := run_holder(run_dir)) is not None:
        raise UserError(busy_message(run_dir.name, found))


def start_training(config, run_dir: str | Path | None = None) -> Job:
    """Start `localsft train` on a checked `TrainConfig` in a child process, in a new run folder.

    UserError when a training is already running, or when the child refuses to start.
    """
    with _one_start():
        _refuse_if_busy(None)
        run_dir = Path(run_dir).expanduser() if run_dir else new_run_dir(config.model)
        try:
            run_dir.mkdir(parents=True)
        except FileExistsError:
            raise UserError(f"{run_dir} already exists; a new run needs a new folder.") from None
        run = RunFolder(run_dir)
        config.save(run.config_path)
        return _spawn(train_command(run_dir, config_file=run.config_path), run_dir, fresh=True)


def resume_training(run_dir: str | Path) -> Job:
    """Continue the run in `run_dir` from its latest checkpoint, in a child process."""
    run = RunFolder.open(run_dir)
    with _one_start():
        _refuse_if_busy(run.path)
        return _spawn(train_command(run.path, resume=True), run.path, fresh=False)


def _spawn(cmd: list[str], run_dir: Path, fresh: bool) -> Job:
    """Start the child and wait until it holds this machine's training lock (or has ended).

    A child that ended having logged events ran (its outcome is in its log); one that logged
    nothing, or only a failed resume, was refused: its reason is raised as a UserError.
    """
    run = RunFolder(run_dir)
    logged = len(run.events())
    (run_dir / STOP_FILE).unlink(missing_ok=True)
    with open(run_dir / LOG_FILE, "ab") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    _children[child.pid] = child
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = training_holder()
        if found is not None and found.pid == child.pid:
            return Job(child.pid, run_dir, found.since)
        if child.poll() is not None:
            new = run.events()[logged:]
            if any(e.get("type") != "resume_failed" for e in new):
                return Job(child.pid, run_dir, time.time())
            raise UserError(_why_it_ended(run_dir, new, child.returncode, fresh))
        time.sleep(0.05)
    return Job(child.pid, run_dir, time.time())  # slow to start, but alive: it is the job


def _why_it_ended(run_dir: Path, events: list[dict], returncode: int, fresh: bool) -> str:
    """The reason a child that never began gave (a typed event), or a plain fallback."""
    reasons = [str(e["reason"]) for e in events if e.get("reason")]
    running = current_job()  # e.g. a training started from the CLI took the machine meanwhile
    if reasons:
        reason = reasons[-1]
    elif running is not None:
        reason = f"A training is already running (run {running.name}); only one runs at a time."
    else:  # keep the folder: its train.log is the only trace
        return f"The training process ended before it started (exit code {returncode}); see {run_dir / LOG_FILE}."
    if fresh:  # it never began: the folder holds only what this app wrote
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
    return reason


def start_improve(parent: str | Path, run_dir: str | Path | None = None) -> Job:
    """Start the next version of run `parent`, trained on its votes and corrections, as a new run:
    the child runs `localsft train --from PARENT --preferences --out NEW` (the new run records
    its parent). The same one-training-per-machine job as `start_training`, followed the same way.
    """
    parent = RunFolder.open(parent)
    run_dir = Path(run_dir).expanduser() if run_dir else new_run_dir(parent.model_name())
    cmd = [sys.executable, "-m", "localsft", "train", "--from", str(parent.path), "--preferences",
           "--out", str(run_dir)]
    return _launch(lambda: cmd, run_dir)


def start_improve(parent: str | Path, run_dir: str | Path | None = None) -> Job:
    """Start the next version of run `parent`, trained on its votes and corrections, as a new run:
    the child runs `localsft train --from PARENT --preferences --out NEW` (the new run records its
    parent). The same one-training-per-machine job as `start_training`, followed the same way."""
    parent = RunFolder.open(parent)
    with _one_start():
        _refuse_if_busy(None)
        run_dir = Path(run_dir).expanduser() if run_dir else new_run_dir(parent.model_name())
        run_dir.mkdir(parents=True)
        cmd = [sys.executable, "-m", "localsft", "train", "--from", str(parent.path), "--preferences",
               "--out", str(run_dir)]
        return _spawn(cmd, run_dir, fresh=True)


def stop_training(force: bool = False) -> Job | None:
    """Ask the running training to stop; returns it, or None when nothing runs.

    Normally it writes RUN/STOP: the trainer stops after the current step and saves a
    checkpoint (resumable). force: also send SIGTERM, for a job stuck before its first step.
    """
    job = current_job()
    if job is None:
        return None
    (job.run_dir / STOP_FILE).write_text("stop requested from the app\n")
    if force and job.pid:
        try:
            os.kill(job.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    return job


def wait(job: Job, timeout: float) -> bool:
    """Wait up to `timeout` seconds for the job's training to end; True when it has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = current_job()
        if running is None or running.pid != job.pid:
            return True
        time.sleep(0.2)
    return False


def list_runs(warn=None) -> list:
    """Every run in the store, newest first (see localsft.runs.status.list_runs)."""
    from localsft.runs.status import list_runs as summaries

    return summaries(warn=warn)


def find_run(name: str) -> RunFolder:
    """A run of the runs store by folder name (also one that failed before writing its config)."""
    folder = paths.runs_dir() / name
    if not name or "/" in name or name in (".", "..") or not folder.is_dir():
        raise UserError(f"There is no run named {name!r} in {paths.runs_dir()}.")
    return RunFolder(folder)


def delete_run(name: str) -> Path:
    """Delete a run folder; refused while any process writes it (training, export). Returns its path."""
    import shutil

    run = find_run(name)
    with lock_run(run.path, "deleting"):
        shutil.rmtree(run.path)
    return run.path


def dry_run(config, timeout: float = 600) -> str:
    """The plan `localsft train --dry-run` prints (steps, time, memory) for a checked TrainConfig."""
    with tempfile.TemporaryDirectory(dir=paths.home()) as tmp:
        config_file, events_file = Path(tmp) / "config.yaml", Path(tmp) / "events.jsonl"
        config.save(config_file)
        cmd = [sys.executable, "-m", "localsft", "train", "--config", str(config_file), "--dry-run",
               "--events", str(events_file)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        failed = [e for e in read_events(events_file) if e.get("type") == "failed"]
    if done.returncode == 0:
        return (done.stdout + done.stderr).strip()  # the plan is printed on stderr, like progress
    if failed:
        raise UserError(failed[-1].get("reason") or "The plan could not be made.")
    raise UserError(f"The plan could not be made (exit code {done.returncode}).")
