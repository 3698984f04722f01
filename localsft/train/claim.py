"""Claim a run folder for training: a new run only in a new or empty folder, and the locks.

While a training runs, its process holds the run folder's lock and this machine's training
lock (localsft.runs.lock): a second training, a second resume of the same run, or deleting
it, is refused with a plain message; the OS drops both when the process ends.
"""

from __future__ import annotations

from pathlib import Path

from localsft.errors import UserError
from localsft.runs.folder import JOB_LOG, STOP_FILE, RunFolder
from localsft.runs.lock import RUN_LOCK, Lock, lock_run, lock_training
from localsft.train.config import TrainConfig


def claim(run: RunFolder, config: TrainConfig | None) -> list[Lock]:
    """The locks for training `run`; config: the new run's (None: a resume of an existing run).
    Release them (in reverse order) when training ends."""
    if config is not None:
        check_new_run_folder(run, config)
    return _take_locks(run)


def check_new_run_folder(run: RunFolder, config: TrainConfig) -> None:
    """A new run goes into a new or empty folder, so that it never overwrites anyone's files.

    Allowed already there: what the studio puts in the folder it starts a run in (this very
    config as config.yaml, its train.log) and localsft's own lock file.
    """
    path = run.path
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a folder. Choose another --out.")
    if not path.exists():
        return
    if run.events_path.exists():
        raise UserError(f"{path} already holds a run. Resume it with --resume, or choose another --out.")
    others = sorted(p.name for p in path.iterdir() if p.name not in (RUN_LOCK, JOB_LOG, STOP_FILE))
    if others == ["config.yaml"] and _same_config(run.config_path, config):
        return
    if others:
        raise UserError(f"{path} is not empty (it holds {', '.join(others[:3])}{', ...' if len(others) > 3 else ''}). "
                        f"A new run needs a new or empty folder, so that nothing in it is overwritten. "
                        f"Choose another --out.")


def _same_config(path: Path, config: TrainConfig) -> bool:
    try:
        return TrainConfig.load(path) == config
    except UserError:
        return False


def _take_locks(run: RunFolder) -> list[Lock]:
    """The run folder's lock, then this machine's training lock; nothing is created when refused."""
    if run.path.is_dir():
        locks = [lock_run(run.path, "training")]
        try:
            locks.append(lock_training(run.path))
        except UserError:
            locks[0].release()
            raise
        return locks
    machine = lock_training(run.path)
    try:
        run.path.mkdir(parents=True, exist_ok=True)
        return [lock_run(run.path, "training"), machine]
    except BaseException:
        machine.release()
        raise
