"""localsft: fine-tune a small language model on your own machine.

Importing the package first makes MLX's CPU backend use a fast BLAS on Linux
(see `localsft.platform.blas`), so every entry point (CLI, UI, tests) gets it.
"""

from localsft.platform import blas as _blas

_blas.preload_fast_blas()

__version__ = "0.1.0"
