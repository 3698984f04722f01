"""The `localsft` command line: one module per verb in `localsft/commands/`.

Each command module defines `register(subparsers)` (adds its parser and sets
`func`) and never prints tracebacks for user mistakes: it raises UserError,
which is shown here as one plain sentence.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import localsft  # noqa: F401  (fast BLAS before mlx)
from localsft.errors import UserError

# Verb modules under localsft.commands, in the order `localsft --help` lists them.
COMMANDS = ("models", "generate", "doctor", "data", "train", "runs", "recipes", "chat", "eval", "export", "push", "ui")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="localsft", description="Fine-tune a small language model locally.")
    parser.add_argument("--version", action="version", version=f"localsft {localsft.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"localsft.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
