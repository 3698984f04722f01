"""`localsft export RUN_DIR --format F`: write the tuned model in a standard format, checked."""

from __future__ import annotations

import sys

from localsft.export import FORMATS, export_run


def run(args) -> int:
    from localsft.runs.names import resolve_run

    args.run_dir = resolve_run(args.run_dir)
    results = export_run(args.run_dir, args.format, out=args.out, quantize=args.quantize, dtype=args.dtype,
                         force=args.force, on_progress=lambda msg: print(f"[{msg}]", file=sys.stderr))
    for result in results:
        print(f"\n{result.fmt}: {result.path}")
        print(f"  {result.check.summary()}")
        if not result.check.passed:
            print(f"  WARNING: written with --force although the fuse check failed.")
        for line in result.usage.splitlines():
            if not line.startswith("```"):
                print(f"  {line}")
    return 0


def register(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run: its name (see `localsft runs`) or folder")
    parser.add_argument("--format", default="all", metavar="F",
                        help=f"{', '.join(FORMATS)}, several joined by commas, or all (default; one subfolder each)")
    parser.add_argument("--out", default=None, help="output folder (default: RUN_DIR/exports/<format>)")
    parser.add_argument("--quantize", type=int, choices=(4, 8), default=None,
                        help="re-quantize after merging: mlx 4 or 8 bits, gguf 8 (q8_0)")
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default=None,
                        help="float type of the written weights (default: the base model's)")
    parser.add_argument("--force", action="store_true", help="write the export even if its fuse check fails")
    parser.set_defaults(func=run)
