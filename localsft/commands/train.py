"""`localsft train`: fine-tune with a progress bar; Ctrl-C (or SIGTERM, or RUN/STOP) stops cleanly."""

from __future__ import annotations

import signal
import sys

from localsft.errors import UserError
from localsft.train.config import TrainConfig, help_lines


def build_config(args) -> TrainConfig:
    """Defaults, then the recipe, then --data/--model, then each --set (later wins)."""
    config = TrainConfig()
    if args.recipe:
        from localsft.recipes import load_recipe

        config = load_recipe(args.recipe).train_config()
    changes = {k: v for k, v in (("data", args.data), ("model", args.model)) if v is not None}
    return config.replace(**changes).with_overrides(args.set or [])


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class _Progress:
    """Prints events: a one-line bar on a terminal, a line every few steps otherwise."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def __call__(self, event) -> None:
        kind = event.type
        if kind == "started":
            print(f"[{event.model}: {event.precision}]\n{event.train_examples} training examples, "
                  f"{event.steps} steps ({event.epochs} epochs), about {_duration(event.est_seconds)} "
                  f"and {event.est_memory_mb:.0f} MB", file=self.stream)
        elif kind == "step":
            self._step(event)
        elif kind == "eval":
            self._line(f"step {event.step}: validation loss {event.val_loss:.4f}"
                       f"{' (best)' if event.improved else ''}")
        elif kind == "early_stopped":
            self._line(f"early stop: no improvement since step {event.best_step}")
        elif kind in ("failed", "stopped"):
            self._line(f"{kind}: {getattr(event, 'reason', '') or f'checkpoint at step {event.step}'}")

    def _step(self, event) -> None:
        width = 24
        filled = int(width * event.step / max(event.steps, 1))
        text = (f"step {event.step}/{event.steps} [{'=' * filled}{' ' * (width - filled)}] loss {event.loss:.4f} "
                f"lr {event.learning_rate:.1e} {event.tokens_per_s:.0f} tok/s ETA {_duration(event.eta_s)}")
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
        elif event.step % 10 == 0 or event.step == event.steps:
            print(text, file=self.stream)

    def _line(self, text: str) -> None:
        print(("\r\x1b[K" if self.tty else "") + text, file=self.stream)


class _StopSignals:
    """SIGINT and SIGTERM set a flag that the loop polls after every step."""

    def __init__(self) -> None:
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (saving a checkpoint)...", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def __call__(self) -> bool:
        return self.requested


def run(args) -> int:
    from localsft.train import train

    if args.resume:
        config, out = None, args.resume
    else:
        config, out = build_config(args), args.out
    if args.dry_run:
        from localsft.train.loop import plan_only

        plan_only(config or TrainConfig.load(f"{out}/config.yaml"), on_event=_Progress())
        return 0
    with _StopSignals() as stop:
        result = train(config, run_dir=out, on_event=_Progress(), stop=stop, resume=bool(args.resume))
    if result.status == "failed":
        raise UserError(result.reason)
    from localsft.run_folder import RunFolder

    adapters = RunFolder(result.run_dir).best_adapter()
    resume_hint = f"; resume with: localsft train --resume {result.run_dir}" if result.status == "stopped" else ""
    print(f"{result.status}: run in {result.run_dir}, adapters in {adapters}{resume_hint}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="fine-tune a model on your examples (LoRA by default)",
                                   epilog="settings for --set:\n  " + "\n  ".join(help_lines()),
                                   formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a data file (CSV, JSONL, XLSX, ...) or a folder with train.jsonl")
    parser.add_argument("--recipe", help="a recipe name (see `localsft recipes`) or a recipe YAML file")
    parser.add_argument("--model", help="model name or folder (default: the embedded default model)")
    parser.add_argument("--out", help="run folder to create (default: a new folder under the runs store)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="show the plan (time, memory) without training")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or interrupted run exactly")
    parser.set_defaults(func=run)
