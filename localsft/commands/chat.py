"""`localsft chat RUN_DIR [--compare]`: chat with a run's tuned model in the terminal.

With --compare, every message is answered by the base and the tuned model (decoded
together as one batch); the base answer streams first, the tuned one follows under
its own label. Commands: /reset forgets the conversation, /quit (or Ctrl-D) leaves.
"""

from __future__ import annotations

import sys

from localsft.inference.side_by_side import SIDES, open_compare
from localsft.inference.generate import SamplingSettings

LABELS = {"base": "base model", "tuned": "tuned model"}


def _print_turn(chat, text: str, compare: bool) -> None:
    """Stream the answers: the first side live, the other buffered until the first is done."""
    first = chat.sides[0]
    pending: dict[str, list[str]] = {side: [] for side in chat.sides}
    if compare:
        print(f"[{LABELS[first]}]")
    for side, piece in chat.send(text):
        if side == first:
            sys.stdout.write(piece)
            sys.stdout.flush()
        else:
            pending[side].append(piece)
    print()
    for side in chat.sides[1:]:
        print(f"\n[{LABELS[side]}]")
        print("".join(pending[side]))
    print()


def run(args) -> int:
    from localsft.runs.names import resolve_run

    args.run = resolve_run(args.run)
    settings = SamplingSettings(max_tokens=args.max_tokens, temperature=args.temp,
                                top_p=args.top_p, seed=args.seed)
    sides = SIDES if args.compare else ("tuned",)
    chat = open_compare(args.run, settings, sides, args.system, args.precision)
    loaded = chat.switchable.loaded
    print(f"[{loaded.path.name} + adapter {chat.switchable.adapter_path}: {loaded.precision.describe()}]",
          file=sys.stderr)
    print("Type a message; /reset starts over, /quit leaves.", file=sys.stderr)
    while True:
        try:
            text = input("> ").strip()
        except EOFError:
            print()
            return 0
        if text in ("/quit", "/exit"):
            return 0
        if text == "/reset":
            chat.reset()
            print("(conversation cleared)")
            continue
        if text:
            _print_turn(chat, text, args.compare)


def register(parser) -> None:
    parser.add_argument("run", help="the run: its name (see `localsft runs`) or folder")
    parser.add_argument("--compare", action="store_true", help="answer with the base and the tuned model")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temp", type=float, default=0.0, help="sampling temperature (0 = greedy)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the top tokens up to this probability")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--system", default=None,
                        help="the system message of the conversation (default: the instructions the run was "
                             "trained with, if any; \"\" for none)")
    parser.add_argument("--precision", default="auto", help="auto, float32, float16, bfloat16 or quantized")
    parser.set_defaults(func=run)
