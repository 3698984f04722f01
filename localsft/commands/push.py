"""`localsft push RUN_DIR --repo USER/NAME`: publish an export (with its model card) to the Hugging Face Hub."""

from __future__ import annotations

import sys

from localsft.export.push import PUSHABLE, push_run


def run(args) -> int:
    from localsft.runs.names import resolve_run

    args.run_dir = resolve_run(args.run_dir)
    result = push_run(args.run_dir, args.repo, fmt=args.format, private=args.private,
                      on_progress=lambda msg: print(f"[{msg}]", file=sys.stderr))
    print(f"Pushed {len(result.files)} files ({result.size_bytes / 2**20:.1f} MB) from {result.folder}")
    print(f"  {result.repo_url}")
    return 0


def register(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run: its name (see `localsft runs`) or folder")
    parser.add_argument("--repo", required=True, help="USER/NAME on the Hub (created if missing)")
    parser.add_argument("--format", default="adapter", choices=PUSHABLE,
                        help="which export to upload (default: adapter; exported first if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.set_defaults(func=run)
