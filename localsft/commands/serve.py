"""`localsft serve`: an OpenAI-compatible API for every base model and finished run.

    localsft serve [--host 127.0.0.1] [--port 8000] [--api-key KEY]

Loopback only unless an API key is given (also read from $LOCALSFT_API_KEY).
"""

from __future__ import annotations

import os
import sys


def run(args) -> int:
    from localsft.serve import check_host, serve

    api_key = args.api_key or os.environ.get("LOCALSFT_API_KEY") or None
    check_host(args.host, api_key)
    print(f"serving the OpenAI API on http://{args.host}:{args.port}/v1 "
          f"({'API key required' if api_key else 'this computer only'}); Ctrl-C stops.", file=sys.stderr)
    serve(args.host, args.port, api_key)
    return 0


def register(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this computer only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None,
                        help="require 'Authorization: Bearer KEY' (needed beyond loopback; or $LOCALSFT_API_KEY)")
    parser.set_defaults(func=run)
