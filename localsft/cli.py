"""The `localsft` command line: one module per verb in `localsft/commands/`.

Only the chosen verb's module is imported (so `localsft --help` loads no MLX). Each
module defines `register(parser)` (adds its arguments and sets `func`) and never
prints tracebacks for user mistakes: it raises UserError, shown here as one sentence.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from localsft import __version__
from localsft.errors import UserError

# Verb -> one-line help, in the order `localsft --help` lists them. Module: localsft.commands.<verb>.
COMMANDS = {
    "models": "list or add models",
    "generate": "answer one prompt with a model (streamed)",
    "doctor": "show backend, BLAS speed, memory, models, versions",
    "data": "check example files, prepare training splits, preview",
    "train": "fine-tune a model on your examples (LoRA by default)",
    "runs": "list training runs (model, status, best validation loss, date)",
    "recipes": "list training recipes (presets and task recipes)",
    "chat": "chat with a run's tuned model (--compare: base and tuned side by side)",
    "eval": "evaluate a run: base vs tuned on held-out data, forgetting check",
    "export": "export a run's tuned model (mlx, adapter, peft, hf, gguf)",
    "push": "upload a run's export to the Hugging Face Hub",
    "feedback": "the votes and corrections collected for a run (--export: preference pairs as JSONL)",
    "fill": "answer every row of a spreadsheet with a run (or a base model)",
    "serve": "serve base models and finished runs through an OpenAI-compatible API",
    "ui": "open the studio in the browser (data, train, compare, export)",
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `verb`'s module is imported and gets its full arguments."""
    parser = argparse.ArgumentParser(prog="localsft", description="Fine-tune a small language model locally.")
    parser.add_argument("--version", action="version", version=f"localsft {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            importlib.import_module(f"localsft.commands.{name}").register(sub)
    return parser


def chosen_verb(argv: list[str]) -> str | None:
    """The first argument that names a verb (options before it are the top-level ones)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(chosen_verb(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nstopped.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
