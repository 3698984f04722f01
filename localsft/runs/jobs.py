"""Training jobs for the app: one training per machine, in a child process, followed by its event log.

The child runs the same command a user would type (`python -m localsft train ... --out RUN`),
so the app and the CLI share one code path and a crash or out-of-memory in training never
takes the app down. `<home>/training.json` names the running job (pid, run folder); any
page, tab or app process finds it there, which is how a reload re-attaches.

    job = start_training("examples.csv", recipe="quick-test", overrides=["iters=20"])
    progress = read_progress(job.run_dir)   # steps, losses, ETA, samples, status
    stop_training()                         # a clean stop at the next step (RUN/STOP)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from localsft import paths
from localsft.errors import UserError
from localsft.runs.folder import RunFolder, atomic_write_text

JOB_FILE = "training.json"
STOP_FILE = "STOP"  # polled by the trainer after every step (localsft.train.loop)
LOG_FILE = "train.log"  # the child's stdout and stderr
DONE = ("finished", "early_stopped", "stopped", "failed")

# The processes this app process started, by pid, so that finished children are reaped
# (a child that has exited stays a zombie, and looks alive, until its parent waits for it).
# Deliberately global: one training per machine.
_children: dict[int, subprocess.Popen] = {}


@dataclass
class Job:
    """A training process and the run folder it writes."""

    pid: int
    run_dir: Path
    started: float
    command: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.run_dir.name


def _job_path() -> Path:
    return paths.home() / JOB_FILE


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:  # our own child that has ended: reap the zombie
            return False
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read_job() -> Job | None:
    try:
        data = json.loads(_job_path().read_text())
        return Job(int(data["pid"]), Path(data["run_dir"]), float(data["started"]), list(data.get("command", [])))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def current_job() -> Job | None:
    """The training running on this machine (started by any app or tab), or None.

    A job file left behind by a process that has ended is removed.
    """
    path = _job_path()
    job = _read_job()
    if job is None:
        try:
            if time.time() - path.stat().st_mtime > 5:
                path.unlink(missing_ok=True)  # unreadable and old: a torn write from a crash
        except FileNotFoundError:
            pass
        return None  # (a young unreadable file is a Start being written right now)
    if _alive(job.pid):
        return job
    path.unlink(missing_ok=True)
    _children.pop(job.pid, None)
    return None


def is_running(run_dir: str | Path) -> bool:
    """Whether the training of this run folder is running now."""
    job = current_job()
    return job is not None and job.run_dir.resolve() == Path(run_dir).resolve()


def _write_job(path: Path, job: Job) -> None:
    atomic_write_text(path, json.dumps({"pid": job.pid, "run_dir": str(job.run_dir), "started": job.started,
                                        "command": job.command}))


def _claim(job_path: Path, run_dir: Path) -> None:
    """Create the job file exclusively, so that two Starts at the same moment cannot both win.

    Until the child runs, the file names this process: if it dies first, the claim lapses.
    """
    for _ in range(2):
        try:
            fd = os.open(job_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            running = current_job()
            if running is not None:
                raise UserError(f"A training is already running (run {running.name}). Stop it or wait "
                                f"for it to finish before starting another; only one runs at a time.") from None
            continue
        os.close(fd)
        _write_job(job_path, Job(os.getpid(), run_dir, time.time()))
        return
    raise UserError("Another training is starting right now; try again in a moment.")


def train_command(data: str | Path | None = None, *, run_dir: Path | None, recipe: str | None = None,
                  model: str | None = None, overrides: list[str] | tuple = (), resume: bool = False) -> list[str]:
    """The `localsft train` command line for this job (exactly what a user could type)."""
    cmd = [sys.executable, "-m", "localsft", "train"]
    if resume:
        return cmd + ["--resume", str(run_dir)]
    if data is None:
        raise UserError("Choose the examples to train on first (Data tab).")
    cmd += ["--data", str(data)] + (["--out", str(run_dir)] if run_dir else [])
    if recipe:
        cmd += ["--recipe", recipe]
    if model:
        cmd += ["--model", model]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def new_run_dir(model: str | None = None) -> Path:
    """A fresh run folder under the runs store, named as the trainer names them."""
    from localsft.train.config import TrainConfig
    from localsft.train.loop import new_run_dir as trainer_run_dir

    return trainer_run_dir(TrainConfig(model=model))


def start_training(data: str | Path | None = None, *, recipe: str | None = None, model: str | None = None,
                   overrides: list[str] | tuple = (), run_dir: str | Path | None = None,
                   resume: bool = False) -> Job:
    """Start `localsft train` in a child process; UserError when a training is already running.

    resume: continue the run in `run_dir` from its latest checkpoint.
    """
    if resume:
        run_dir = RunFolder.open(run_dir).path
    run_dir = Path(run_dir).expanduser() if run_dir else new_run_dir(model)
    return _launch(lambda: train_command(data, run_dir=run_dir, recipe=recipe, model=model, overrides=overrides,
                                         resume=resume), run_dir)


def _launch(command, run_dir: Path) -> Job:
    """Claim the machine's one training, then run `command()` (the child's command line) in a child
    process writing `run_dir`; the claim lapses if anything fails before the child runs."""
    job_path = _job_path()
    _claim(job_path, run_dir)
    try:
        cmd = command()
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / STOP_FILE).unlink(missing_ok=True)
        with open(run_dir / LOG_FILE, "ab") as log:
            child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    except BaseException:
        job_path.unlink(missing_ok=True)
        raise
    _children[child.pid] = child
    job = Job(child.pid, run_dir, time.time(), cmd)
    _write_job(job_path, job)
    return job


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


def stop_training(force: bool = False) -> Job | None:
    """Ask the running training to stop; returns it, or None when nothing runs.

    Normally it writes RUN/STOP: the trainer stops after the current step and saves a
    checkpoint (resumable). force: also send SIGTERM, for a job stuck before its first step.
    """
    job = current_job()
    if job is None:
        return None
    (job.run_dir / STOP_FILE).write_text("stop requested from the app\n")
    if force and job.command:  # (no command: a Start is still spawning; never signal its app)
        try:
            os.killpg(job.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    return job


def wait(job: Job, timeout: float) -> bool:
    """Wait up to `timeout` seconds for the job's process to end; True when it has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(job.pid):
            current_job()  # clears the job file
            return True
        time.sleep(0.2)
    return False


@dataclass
class Progress:
    """What the app shows about a run, rebuilt from its event log alone."""

    run_dir: Path
    status: str = "waiting"  # waiting, running, finished, early_stopped, stopped, failed, interrupted
    step: int = 0
    steps: int = 0
    eta_s: float | None = None
    tokens_per_s: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    val_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    best_val_loss: float | None = None
    samples: list[dict] = field(default_factory=list)  # latest [{"prompt", "answer", "reference"}]
    plan: dict = field(default_factory=dict)  # the "started" event
    message: str = ""  # why it failed, or how it ended

    @property
    def done(self) -> bool:
        return self.status in DONE or self.status == "interrupted"

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.steps) if self.steps else 0.0


def _apply(progress: Progress, event: dict) -> None:
    kind = event.get("type")
    if kind == "started":
        progress.plan, progress.steps, progress.status = event, event.get("steps", 0), "running"
        progress.eta_s = event.get("est_seconds")
    elif kind == "step":
        progress.step, progress.steps = event["step"], event.get("steps", progress.steps)
        progress.eta_s, progress.tokens_per_s = event.get("eta_s"), event.get("tokens_per_s")
        progress.losses.append((event["step"], event["loss"]))
    elif kind == "eval":
        progress.val_losses.append((event["step"], event["val_loss"]))
        progress.best_val_loss = event.get("best_val_loss")
    elif kind == "sample":
        progress.samples = event.get("samples", [])
    elif kind in DONE:
        progress.status, progress.eta_s = kind, 0.0
        progress.step = event.get("step", progress.step)
        if event.get("best_val_loss") is not None:
            progress.best_val_loss = event["best_val_loss"]
        progress.message = event.get("reason", "")


def cli_error(output: str) -> str:
    """The plain sentence the CLI printed as `error: ...` (the last one), or ""."""
    return next((line[len("error: "):] for line in reversed(output.splitlines()) if line.startswith("error: ")), "")


def _log_error(run_dir: Path) -> str:
    """The CLI's error line in RUN/train.log, if the child died before logging an event."""
    try:
        return cli_error((run_dir / LOG_FILE).read_text(errors="replace"))
    except FileNotFoundError:
        return ""


def read_progress(run_dir: str | Path, running: bool | None = None) -> Progress:
    """The run's progress from RUN/events.jsonl. running: whether its process is alive
    (None: ask the job file); a run that is not running and never logged an end is "interrupted"."""
    run_dir = Path(run_dir)
    progress = Progress(run_dir)
    for event in RunFolder(run_dir).events():
        _apply(progress, event)
    if running is None:
        running = is_running(run_dir)
    if not running and not progress.done:
        reason = _log_error(run_dir)
        progress.status = "failed" if reason else "interrupted"
        progress.message = reason or "The training process ended without finishing (it was killed or crashed)."
    return progress


def list_runs() -> list:
    """Every run in the store, newest first (localsft.runs.status), with the running one told
    apart from one whose process ended without a final event ("interrupted")."""
    from dataclasses import replace

    from localsft.runs.status import list_runs as summaries

    return [replace(r, status="interrupted") if r.status == "running" and not is_running(r.path) else r
            for r in summaries()]


def find_run(name: str) -> RunFolder:
    """A run of the runs store by folder name (also one that failed before writing its config)."""
    folder = paths.runs_dir() / name
    if not name or "/" in name or name in (".", "..") or not folder.is_dir():
        raise UserError(f"There is no run named {name!r} in {paths.runs_dir()}.")
    return RunFolder(folder)


def delete_run(name: str) -> Path:
    """Delete a run folder (refused while it is training); returns the deleted path."""
    import shutil

    run = find_run(name)
    if is_running(run.path):
        raise UserError(f"Run {name} is training right now; stop it before deleting it.")
    shutil.rmtree(run.path)
    return run.path


def dry_run(data: str | Path | None, *, recipe: str | None = None, model: str | None = None,
            overrides: list[str] | tuple = (), timeout: float = 600) -> str:
    """The plan `localsft train --dry-run` prints (steps, time, memory), from the same command."""
    cmd = train_command(data, run_dir=None, recipe=recipe, model=model, overrides=overrides)
    done = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode == 0:
        return (done.stdout + done.stderr).strip()  # the plan is printed on stderr, like progress
    raise UserError(cli_error(done.stderr) or f"The plan could not be made (exit code {done.returncode}).")
