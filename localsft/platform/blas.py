"""Make MLX's CPU backend use OpenBLAS instead of the bundled reference BLAS.

The `mlx-cpu` wheel links the netlib reference BLAS, which runs fp32 matmul at
2-5 GFLOP/s. Loading Debian's OpenBLAS with RTLD_GLOBAL *before* `mlx.core` is
imported makes the dynamic linker resolve `sgemm_` and friends to OpenBLAS:
20-50x faster (benchmarks/backend.py measures it). This must run before the first `import mlx`.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from contextlib import contextmanager

# Where Debian/Ubuntu put the threaded OpenBLAS (package libopenblas0-pthread).
_CANDIDATES = (
    "/usr/lib/*-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/*-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
)

_loaded: str | None = None
_library: ctypes.CDLL | None = None
_too_late = False  # mlx was imported before localsft, with OpenBLAS on the machine


def find_openblas() -> str | None:
    """Path of a system OpenBLAS, or None. `LOCALSFT_BLAS` overrides the search."""
    override = os.environ.get("LOCALSFT_BLAS")
    if override:
        return override if os.path.exists(override) else None
    for pattern in _CANDIDATES:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def preload_fast_blas() -> str | None:
    """Load OpenBLAS globally on Linux if mlx is not imported yet. Returns its path."""
    global _loaded, _library, _too_late
    if _loaded or not sys.platform.startswith("linux"):
        return _loaded
    if os.environ.get("LOCALSFT_BLAS") == "reference":
        return None
    if "mlx.core" in sys.modules:  # too late: symbols already bound (loading it now changes nothing)
        _too_late = find_openblas() is not None
        return None
    path = find_openblas()
    if path is None:
        return None
    try:
        _library = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    _loaded = path
    return path


def set_threads(count: int) -> bool:
    """Have OpenBLAS use `count` threads from now on (process-wide). False, and nothing changes,
    when localsft did not load OpenBLAS or the user chose a count in $OPENBLAS_NUM_THREADS."""
    if _library is None or os.environ.get("OPENBLAS_NUM_THREADS"):
        return False
    _library.openblas_set_num_threads(count)
    return True


# Threads for decoding (answers made while training: format checks, samples, replay answers; the
# API server's answers). A decode step is ~200 matmuls of a few rows each, bound by reading the
# weights; splitting each across threads costs a synchronization per matmul. Measured on the
# default model, 2-core machine: the glossary format check (8 prompts, 70 tokens) took 4.9-6.2 s
# wall and 6.2-7.6 CPU s on 1 thread, 6.1-6.3 s and 12.1-12.3 CPU s on 2; the server under the
# serve benchmark's load (4 clients, 24 requests, 24 tokens each, load 6-11) made 16.9 tok/s for
# 19.8 CPU s on 1 thread, 14.7 tok/s for 26.5 CPU s on 2 (48 tokens each at load 3-5: 28.1-28.5
# against 21.2-24.3 tok/s), greedy answers identical. Training steps (160-position rows) stay on
# OpenBLAS's default: 2 threads ran them 1.15-1.27x faster in wall time.
DECODE_THREADS = 1


@contextmanager
def threads(count: int):
    """OpenBLAS uses `count` threads inside the block, and what it used before after it (nothing
    changes when localsft did not load OpenBLAS or $OPENBLAS_NUM_THREADS chose the count)."""
    before = _library.openblas_get_num_threads() if _library is not None else None
    if not set_threads(count):
        yield
        return
    try:
        yield
    finally:
        set_threads(before)


def blas_in_use() -> str:
    """A short description of the BLAS that MLX's CPU backend is using."""
    if sys.platform == "darwin":
        return "Accelerate (macOS)"
    if _loaded:
        return f"OpenBLAS ({_loaded})"
    if _too_late:  # a script imported mlx first: training runs 20-50x slower, so say how to fix it
        return ("reference BLAS bundled with mlx-cpu (slow: mlx was imported before localsft, "
                "so OpenBLAS could not be loaded; import localsft first)")
    return "reference BLAS bundled with mlx-cpu (slow: install libopenblas0-pthread)"
