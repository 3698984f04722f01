"""`localsft train`: fine-tune with a progress bar; Ctrl-C (or SIGTERM, or RUN/STOP) stops cleanly.

`--hosts HOSTFILE` runs the same command once per host under `mlx.launch` (ring backend):
data-parallel training, see localsft/train/distributed.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from localsft.errors import UserError
from localsft.train.config import TrainConfig, help_lines


def build_config(args) -> TrainConfig:
    """Defaults (or a --config file), then the recipe, then --data/--model, then each --set (later wins)."""
    if args.config and args.recipe:
        raise UserError("Give either --config or --recipe, not both (a config file already holds every setting).")
    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.recipe:
        from localsft.train.recipes import load_recipe

        config = load_recipe(args.recipe).train_config()
    changes = {k: v for k, v in (("data", args.data), ("model", args.model)) if v is not None}
    return config.replace(**changes).with_overrides(args.set or [])


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class _Progress:
    """Prints events: a one-line bar on a terminal, a line every few steps otherwise."""

    LOG_EVERY_S = 30.0  # a log file or pipe gets a line at least this often (and every few steps)

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last_line = time.monotonic()

    def __call__(self, event) -> None:
        kind = event.type
        if kind == "started":
            print(f"[{event.model}: {event.precision}]\n{event.train_examples} training examples, "
                  f"{event.steps} steps ({event.epochs} epochs), about {_duration(event.est_seconds)} "
                  f"and {event.est_memory_mb:.0f} MB", file=self.stream)
            if event.sizing and event.sizing.get("sized"):
                print(event.sizing["summary"], file=self.stream)
        elif kind == "step":
            self._step(event)
        elif kind == "eval":
            fmt = "" if event.format_adherence is None else f", format {event.format_adherence:.0%}"
            self._line(f"step {event.step}: validation loss {event.val_loss:.4f}{fmt}"
                       f"{' (best)' if event.improved else ''}")
        elif kind == "health":
            self._line(event.summary)
        elif kind == "early_stopped":
            self._line(f"early stop: the best checkpoint is step {event.best_step} (no improvement since)")
        elif kind in ("failed", "stopped", "diverged"):
            self._line(f"{kind}: {getattr(event, 'reason', '') or f'checkpoint at step {event.step}'}")

    def _step(self, event) -> None:
        width = 24
        filled = int(width * event.step / max(event.steps, 1))
        text = (f"step {event.step}/{event.steps} [{'=' * filled}{' ' * (width - filled)}] loss {event.loss:.4f} "
                f"lr {event.learning_rate:.1e} {event.tokens_per_s:.0f} tok/s ETA {_duration(event.eta_s)}")
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
        elif self._log_due(event):
            print(f"step {event.step}/{event.steps}: loss {event.loss:.4f}, {event.tokens_per_s:.0f} tok/s, "
                  f"{_duration(event.eta_s)} left", file=self.stream, flush=True)
            self.last_line = time.monotonic()

    def _log_due(self, event) -> bool:
        """A log line every few steps (about 10 per run, at least every 10 steps), every 30 s, and at the end."""
        every = max(1, min(10, event.steps // 10))
        return (event.step % every == 0 or event.step in (1, event.steps)
                or time.monotonic() - self.last_line >= self.LOG_EVERY_S)

    def _line(self, text: str) -> None:
        print(("\r\x1b[K" if self.tty else "") + text, file=self.stream)


class _StopSignals:
    """SIGINT and SIGTERM set a flag that the loop polls after every step; the second one means now.

    A Python signal handler runs only in the main thread between bytecodes: while MLX
    computes (a validation pass on a real model can take a minute) it waits, and two
    Ctrl-C in that time count as one (measured: 58.7 s from the second Ctrl-C to the end).
    So with `hard`, signals are counted by a thread woken through `signal.set_wakeup_fd`
    (MLX releases the GIL while it computes): the first asks for a clean stop, the second
    ends the process at once. The last checkpoint stays valid (each is written under a
    temporary name, then renamed) and the OS releases the run's locks.
    Without `hard` (a Python loop that waits), the second signal raises KeyboardInterrupt.
    """

    def __init__(self, hard: bool = False) -> None:
        self.requested = False
        self.hard = hard
        self._old = {}
        self._pipe: tuple[int, int] | None = None
        self._old_wakeup = -1

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        if self.hard:
            read, write = self._pipe = os.pipe()
            os.set_blocking(write, False)
            self._old_wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
            threading.Thread(target=self._count, args=(read,), daemon=True, name="stop-signals").start()
        return self

    def _count(self, read: int) -> None:
        """Runs in its own thread: one byte arrives per signal, as soon as it is delivered."""
        try:
            while data := os.read(read, 16):  # b"": the write end is closed, training is over
                for signum in data:
                    if self.requested:
                        print("\nstopped at once; resume from the last checkpoint with --resume.", file=sys.stderr)
                        os._exit(128 + signum)
                    self._request()
        finally:
            os.close(read)

    def _handle(self, signum, frame) -> None:
        if self.hard:
            return  # counted by the thread above
        if self.requested:
            raise KeyboardInterrupt
        self._request()

    def _request(self) -> None:
        self.requested = True
        print("\nstopping after this step (saving a checkpoint); press Ctrl-C again to stop at once "
              "(resume from the last checkpoint)...", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        if self._pipe is not None:
            signal.set_wakeup_fd(self._old_wakeup)
            os.close(self._pipe[1])  # the counting thread reads the end of the pipe and closes its side
            self._pipe = None

    def __call__(self) -> bool:
        return self.requested


def _apple_silicon_plan(config: TrainConfig, mac_memory_gb: float | None) -> None:
    """Print what the run needs on a Mac (4-bit base); refuse when it cannot fit this Mac (or the one named)."""
    import json

    import mlx.core as mx

    from localsft.models.memory import GIB, fits_message, plan_memory
    from localsft.models.store import resolve_model

    model_config = json.loads((resolve_model(config.model) / "config.json").read_text())
    # settings left to the data-sizing rule: every layer, and its largest batch (a plan on the safe side)
    layers = -1 if config.lora_layers is None else config.lora_layers
    plan = plan_memory(model_config, config.lora_rank, layers, config.batch_tokens or 1024, config.grad_checkpoint)
    print(plan.line())
    memory = mac_memory_gb * GIB if mac_memory_gb else None
    if memory is None and mx.metal.is_available():
        memory = mx.metal.device_info().get("memory_size")
    problem = fits_message(plan, int(memory)) if memory else None
    if problem:
        raise UserError(problem)


def run(args) -> int:
    if args.dry_run:
        return _dry_run(args)
    from localsft.train import distributed

    if args.from_run or _is_preference_run(args.resume):
        return _run_preferences(args)
    if args.resume:
        from localsft.runs.names import resolve_run

        args.resume = str(resolve_run(args.resume))
        config, out = None, args.resume
    else:
        config, out = build_config(args), args.out
    if args.hosts:
        return _run_on_hosts(args, config)
    group = distributed.init()  # more than one process when started by mlx.launch
    with _StopSignals(hard=True) as stop:
        progress = _Progress() if group.is_main else None
        result = distributed.train_in_group(group, config, run_dir=out, on_event=progress, stop=stop,
                                            resume=bool(args.resume))
    if not group.is_main:
        return 0  # rank 0 reports the run
    if result.status in ("failed", "diverged"):
        raise UserError(result.reason)
    from localsft.runs.folder import RunFolder

    adapters = RunFolder(result.run_dir).best_adapter()
    resume_hint = f"; resume with: localsft train --resume {result.run_dir}" if result.status == "stopped" else ""
    print(f"{result.status}: run in {result.run_dir}, adapters in {adapters}{resume_hint}")
    return 0


def _dry_run(args) -> int:
    """The plan only; with --events FILE its outcome (started or failed) is also logged there."""
    from localsft.train import events as ev
    from localsft.train.loop import plan_only

    log = ev.EventLog(Path(args.events) if args.events else None, _Progress())
    try:
        config = TrainConfig.load(Path(args.resume) / "config.yaml") if args.resume else build_config(args)
        _apple_silicon_plan(config, args.mac_memory)
        plan_only(config, on_event=log.emit)
    except UserError as err:
        log.on_event = None
        log.emit(ev.Failed(str(err)))
        raise
    finally:
        log.close()
    return 0


def _is_preference_run(resume: str | None) -> bool:
    path = Path(resume or "").expanduser() / "config.yaml"
    return bool(resume) and path.exists() and bool(TrainConfig.load(path).preference_loss)


def _run_preferences(args) -> int:
    """`--from RUN --preferences [FILE]`: the next version of RUN, trained on the user's judgements."""
    from localsft.runs.folder import RunFolder
    from localsft.train.preference import gather_pairs, preference_config, train_preferences

    if args.hosts or args.data or args.recipe:
        raise UserError("--from trains on the parent run's judgements: it takes no --data, --recipe or --hosts.")
    if args.resume:
        config, pairs, out = None, None, args.resume
    else:
        if args.preferences is None:
            raise UserError("--from RUN needs --preferences (the run's votes and corrections, or a pairs FILE).")
        parent = RunFolder.open(args.from_run)
        config = preference_config(parent, args.loss, args.set)
        pairs, out = gather_pairs(parent, args.preferences or None), args.out
    if args.dry_run:
        print(f"{len(pairs)} preference pairs from {args.preferences or args.from_run}; "
              f"{config.preference_loss}, learning rate {config.learning_rate:g}, {config.epochs:g} epochs")
        return 0
    with _StopSignals() as stop:
        result = train_preferences(config, pairs, run_dir=out, on_event=_Progress(), stop=stop,
                                   resume=bool(args.resume))
    if result.status == "failed":
        raise UserError(result.reason)
    events = [e for e in RunFolder(result.run_dir).events() if e.get("preference_accuracy") is not None]
    best = max((e["preference_accuracy"] for e in events), default=None)
    accuracy = f", held-out preference accuracy {best:.0%}" if best is not None else ""
    print(f"{result.status}: run in {result.run_dir}{accuracy}")
    return 0


def _run_on_hosts(args, config: TrainConfig | None) -> int:
    """Start this command on every host under mlx.launch; Ctrl-C here asks rank 0 for a clean stop."""
    from localsft.runs.folder import RunFolder
    from localsft.train import distributed
    from localsft.runs.folder import STOP_FILE
    from localsft.train.loop import new_run_dir

    out = Path(args.resume or args.out or new_run_dir(config)).expanduser().resolve()
    forwarded = ["--resume", str(out)] if args.resume else [
        *[item for flag, value in (("--data", args.data), ("--recipe", args.recipe), ("--model", args.model))
          if value for item in (flag, value)],
        "--out", str(out), *[item for setting in args.set or [] for item in ("--set", setting)]]
    command = distributed.launch_command(args.hosts, forwarded, args.port)
    # its own session: a Ctrl-C in this terminal reaches only us, and we turn it into RUN/STOP
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    asked = False
    try:
        with _StopSignals() as stop:
            while child.poll() is None:
                if stop.requested and not asked and out.is_dir():
                    (out / STOP_FILE).touch()  # rank 0 sees it; every rank stops at the same step
                    asked = True
                time.sleep(0.2)
    except KeyboardInterrupt:  # a second Ctrl-C: kill the launcher and local ranks now (resume from a checkpoint)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise
    finally:
        (out / STOP_FILE).unlink(missing_ok=True)  # a request rank 0 never saw must not stop a later resume
    if not RunFolder(out).events():  # rank 0 ran elsewhere (or never started): mlx.launch's status is all there is
        return child.returncode
    from localsft.runs.status import FINISHED, STOPPED, read_progress

    return 0 if read_progress(out).status in (FINISHED, STOPPED) else 1


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "settings for --set:\n  " + "\n  ".join(help_lines())
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--data", help="a data file (CSV, JSONL, XLSX, ...) or a folder with train.jsonl")
    parser.add_argument("--recipe", help="a recipe name (see `localsft recipes`) or a recipe YAML file")
    parser.add_argument("--config", metavar="FILE",
                        help="a config.yaml with every setting (as in a run folder; --data/--model/--set still apply)")
    parser.add_argument("--model", help="model name or folder (default: the embedded default model)")
    parser.add_argument("--out", help="run folder to create (default: a new folder under the runs store)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="show the plan (time, memory) without training")
    parser.add_argument("--events", metavar="FILE", help="with --dry-run: also log the plan or the failure as events")
    parser.add_argument("--resume", metavar="RUN", help="continue a stopped or interrupted run exactly (its name or folder)")
    parser.add_argument("--mac-memory", type=float, metavar="GB",
                        help="with --dry-run: check the plan against a Mac with this much unified memory")
    parser.add_argument("--hosts", metavar="HOSTFILE",
                        help="train data-parallel on the machines of an mlx.launch host file (ring backend); "
                             "rank 0 (the first host) writes the run folder")
    parser.add_argument("--port", type=int, help="first TCP port of the ring backend with --hosts (default 32323)")
    parser.add_argument("--from", dest="from_run", metavar="RUN",
                        help="continue from this run's adapter (the next version of it); needs --preferences")
    parser.add_argument("--preferences", nargs="?", const="", metavar="FILE",
                        help="train on preference pairs: the --from run's votes and corrections, "
                             "or a prompt/chosen/rejected JSONL FILE")
    parser.add_argument("--loss", choices=("dpo", "orpo"), default="dpo",
                        help="preference loss with --preferences (default dpo; orpo needs no reference)")
    parser.set_defaults(func=run)
