"""`localsft generate`: stream one chat answer to the terminal."""

from __future__ import annotations

import sys

from localsft.inference.generate import SamplingSettings, stream_chat
from localsft.models.loading import load_model


def run(args) -> int:
    loaded = load_model(args.model, precision=args.precision)
    print(f"[{loaded.path.name}: {loaded.precision.describe()}]", file=sys.stderr)
    settings = SamplingSettings(max_tokens=args.max_tokens, temperature=args.temp, seed=args.seed)
    for piece in stream_chat(loaded, [{"role": "user", "content": args.prompt}], settings):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def register(parser) -> None:
    parser.add_argument("--model", default=None, help="model name or folder (default: the embedded default model)")
    parser.add_argument("--prompt", required=True, help="the user message")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temp", type=float, default=0.0, help="sampling temperature (0 = greedy)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--precision", default="auto", help="auto, float32, float16, bfloat16 or quantized")
    parser.set_defaults(func=run)
