"""`localsft doctor`: one screen to paste into a bug report."""

from __future__ import annotations

import platform
import sys
from importlib import metadata


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def report() -> list[tuple[str, str]]:
    """(label, value) lines describing this machine as localsft sees it."""
    from localsft import paths
    from localsft.platform.backend import available_memory_bytes, backend_name, choose_precision, matmul_gflops
    from localsft.platform.blas import blas_in_use
    from localsft.models.store import list_models

    models = ", ".join(m.name for m in list_models()) or "none (run `localsft models list` to set up the default)"
    return [
        ("backend", backend_name()),
        ("BLAS", blas_in_use()),
        ("matmul fp32", f"{matmul_gflops('float32'):.1f} GFLOP/s (512x576 @ 576x1536)"),
        ("precision", choose_precision().describe()),
        ("free memory", f"{available_memory_bytes() / 2**30:.1f} GiB"),
        ("home", str(paths.home())),
        ("models", models),
        ("python", f"{sys.version.split()[0]} on {platform.platform()}"),
        ("versions", ", ".join(f"{p} {_version(p)}" for p in
                               ("localsft", "mlx", "mlx-lm", "gradio", "huggingface-hub", "numpy"))),
    ]


def run(args) -> int:
    rows = report()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.rjust(width)}: {value}")
    return 0


def register(parser) -> None:
    parser.set_defaults(func=run)
