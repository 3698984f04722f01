"""A run's status, rebuilt from its folder alone: the one set of status words of localsft.

The CLI (`localsft runs`), the studio (Train, Runs, Compare, Export) and the job runner all
read a run through `read_progress` / `list_runs` and speak these words:

    starting     its process runs but has not logged its plan yet (loading the model, the data)
    running      training now (its process holds RUN/.lock)
    finished     trained to the end (or stopped early because validation stopped improving)
    stopped      stopped on request with a checkpoint; resumable
    failed       ended on an error (the reason is logged)
    diverged     the loss grew instead of falling, so training stopped (try a lower learning rate)
    interrupted  its process ended without logging an ending (killed, crashed, power cut); resumable

Whether a run is alive is never guessed from pids: the trainer holds a lock on the run
folder (localsft.runs.lock) that the OS drops when the process ends, however it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from localsft import paths
from localsft.runs.folder import RunFolder
from localsft.runs.lock import run_holder

STARTING, RUNNING, FINISHED, STOPPED = "starting", "running", "finished", "stopped"
FAILED, DIVERGED, INTERRUPTED = "failed", "diverged", "interrupted"
STATUSES = (STARTING, RUNNING, FINISHED, STOPPED, FAILED, DIVERGED, INTERRUPTED)
ENDED = (FINISHED, STOPPED, FAILED, DIVERGED, INTERRUPTED)
RESUMABLE = (STOPPED, INTERRUPTED)
# The event types (localsft.train.events) that end a training session, and the status each leaves.
ENDINGS = {"finished": FINISHED, "stopped": STOPPED, "failed": FAILED, "diverged": DIVERGED}

# One sentence per status, for the studio's progress line.
SENTENCES = {STARTING: "Starting (loading the model and the data)…", RUNNING: "Training…",
             FINISHED: "Finished.", STOPPED: "Stopped. You can resume it later.", FAILED: "Failed.",
             DIVERGED: "Stopped: the training went wrong (the loss grew instead of falling).",
             INTERRUPTED: "Interrupted. You can resume it."}
INTERRUPTED_MESSAGE = "The training process ended without finishing (it was killed or crashed)."


@dataclass
class Progress:
    """Everything shown about a run, rebuilt from RUN/events.jsonl and its lock."""

    run_dir: Path
    status: str = STARTING
    step: int = 0
    steps: int = 0
    eta_s: float | None = None
    tokens_per_s: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    val_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    best_val_loss: float | None = None
    samples: list[dict] = field(default_factory=list)  # latest [{"prompt", "answer", "reference"}]
    plan: dict = field(default_factory=dict)  # the latest "started" event
    message: str = ""  # why it failed, or how it ended
    early: bool = False  # finished early: validation stopped improving
    health: str = ""  # the check after training, one line (localsft.evaluation.degenerate)
    health_ok: bool = True
    started_at: float | None = None  # time of the first event

    @property
    def done(self) -> bool:
        return self.status in ENDED

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.steps) if self.steps else 0.0

    @property
    def sentence(self) -> str:
        if self.status == FINISHED and self.early:
            return "Finished early: the validation loss stopped improving."
        return SENTENCES.get(self.status, self.status)


def _apply(progress: Progress, event: dict) -> None:
    kind = event.get("type")
    if progress.started_at is None:
        progress.started_at = float(event.get("time", 0)) or None
    if kind == "started":
        progress.plan, progress.steps, progress.status = event, int(event.get("steps", 0)), RUNNING
        progress.eta_s, progress.message, progress.early = event.get("est_seconds"), "", False
    elif kind == "step":
        progress.step, progress.steps = int(event["step"]), int(event.get("steps", progress.steps))
        progress.eta_s, progress.tokens_per_s = event.get("eta_s"), event.get("tokens_per_s")
        progress.losses.append((progress.step, float(event["loss"])))
    elif kind == "eval":
        progress.val_losses.append((int(event["step"]), float(event["val_loss"])))
        progress.best_val_loss = event.get("best_val_loss")
    elif kind == "sample":
        progress.samples = list(event.get("samples", []))
    elif kind == "early_stopped":
        progress.early = True
    elif kind == "health":
        progress.health, progress.health_ok = str(event.get("summary", "")), bool(event.get("ok", True))
    elif kind == "resume_failed":  # a resume that never started leaves the run as it was
        progress.message = str(event.get("reason", ""))
    elif kind in ENDINGS:
        progress.status, progress.eta_s = ENDINGS[kind], 0.0
        progress.step = int(event.get("step", progress.step))
        if event.get("best_val_loss") is not None:
            progress.best_val_loss = event["best_val_loss"]
        progress.message = str(event.get("reason", ""))


def read_progress(run_dir: str | Path, alive: bool | None = None) -> Progress:
    """The run's progress from its event log.

    alive: whether a training process writes the run now (None: ask its lock). A run that
    logged no ending and has no live trainer is "interrupted"; a live trainer that has not
    logged its plan since the last ending is "starting" (a resume loading its model).
    """
    run_dir = Path(run_dir)
    progress = Progress(run_dir)
    for event in RunFolder(run_dir).events():
        _apply(progress, event)
    if alive is None:
        found = run_holder(run_dir)
        alive = found is not None and found.what == "training"
    if alive and progress.status != RUNNING:
        progress.status = STARTING
    elif not alive and progress.status in (STARTING, RUNNING):
        progress.status, progress.eta_s = INTERRUPTED, None
        progress.message = progress.message or INTERRUPTED_MESSAGE
    return progress


@dataclass
class RunSummary:
    """One line of `localsft runs` and of the studio's runs table."""

    name: str
    path: Path
    model: str
    status: str  # one of STATUSES
    best_val_loss: float | None
    step: int
    steps: int
    started: str  # local date and time

    @property
    def label(self) -> str:
        """The status as shown in tables: with the step while training."""
        if self.status in (RUNNING, STARTING) and self.steps:
            return f"{self.status} (step {self.step} of {self.steps})"
        return self.status


def summarize(run: RunFolder) -> RunSummary:
    """A run's summary line; ValueError/OSError/TypeError/... when its files are corrupt."""
    progress = read_progress(run.path)
    model = run.model_name() if run.config_path.exists() else None
    when = progress.started_at or run.path.stat().st_mtime
    best = progress.best_val_loss
    return RunSummary(run.name, run.path, Path(model or paths.DEFAULT_MODEL).name, progress.status,
                      None if best is None else float(best), progress.step, progress.steps,
                      datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M"))


def list_runs(root: Path | None = None, warn=None) -> list[RunSummary]:
    """Every run under the runs store, newest first.

    A run folder whose files cannot be read (a corrupt config.yaml or events.jsonl) is
    skipped, and `warn(message)` is called with a sentence naming it.
    """
    root = root or paths.runs_dir()
    out = []
    for folder in sorted(root.iterdir()):
        if not (folder / "config.yaml").exists() and not (folder / "events.jsonl").exists():
            continue
        try:
            out.append(summarize(RunFolder(folder)))
        except Exception as err:  # any unreadable run: skipped, never fatal for the whole list
            if warn is not None:
                warn(f"Skipped run folder {folder}: it is damaged ({type(err).__name__}: {err}).")
    return sorted(out, key=lambda s: s.started, reverse=True)
