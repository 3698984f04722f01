"""Which MLX backend runs here, and which weight precision fits it.

Measured (benchmarks/backend.py): on MLX's CPU backend only fp32 matmul is fast (with OpenBLAS);
bf16/fp16 and 4-bit run scalar. On Metal and CUDA, quantized weights are fast
and small. So frozen weights follow the device: fp32 on CPU, kept as stored on GPU.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import mlx.core as mx

from localsft.platform.blas import blas_in_use


def backend_name() -> str:
    """'Metal', 'CUDA' or 'CPU': where MLX runs its work by default."""
    if mx.default_device() == mx.cpu:
        return "CPU"
    if mx.metal.is_available():
        return "Metal"
    if hasattr(mx, "cuda") and mx.cuda.is_available():
        return "CUDA"
    return "GPU"


# The precision policy of exports: the adapter is merged into exactly the weights it was
# trained against, in full precision (a 4-bit base is expanded, never re-rounded).
AS_TRAINED = "as-trained"


@dataclass(frozen=True)
class Precision:
    """The precision chosen for frozen weights and why."""

    dtype: str  # "float32", "float16", "bfloat16" or "quantized"
    dequantize: bool  # expand quantized weights on load
    reason: str

    def describe(self) -> str:
        """One line for the run's start event and the CLI; names a slow BLAS, the usual cause of a crawl."""
        line = f"{self.dtype} weights on {backend_name()} ({self.reason})"
        blas = blas_in_use()
        if backend_name() == "CPU" and blas.startswith("reference"):
            line += f"; BLAS: {blas}"
        return line


def available_memory_bytes() -> int:
    """Memory the model may use: free RAM on CPU, the recommended working set on Metal."""
    if backend_name() == "Metal":
        return int(mx.metal.device_info().get("max_recommended_working_set_size", 0))
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def choose_precision(policy: str = "auto", fp32_bytes: int | None = None) -> Precision:
    """Decide how to hold frozen weights.

    policy: "auto", "float32", "float16", "bfloat16", "quantized", or AS_TRAINED (what merges
    and exports use: fp32 whatever the device, quantized weights expanded in fp32).
    fp32_bytes: size of the model once dequantized to fp32, to check it fits.
    """
    if policy == AS_TRAINED:
        return Precision("float32", True, "quantized weights expanded in fp32 as training sees them")
    if policy != "auto":
        return Precision(policy, policy != "quantized", "forced by the user")
    if backend_name() != "CPU":
        return Precision("quantized", False, "quantized matmul is fast on this GPU")
    if fp32_bytes is not None and fp32_bytes > 0.6 * available_memory_bytes():
        return Precision("quantized", False, "fp32 would not fit in free memory")
    return Precision("float32", True, "fp32 matmul is the fast path on MLX's CPU backend")


def matmul_gflops(dtype: str = "float32", m: int = 512, k: int = 576, n: int = 1536,
                  repeats: int = 10) -> float:
    """Measured GFLOP/s of an (m,k)@(k,n) matmul; dtype may be "q4" for 4-bit weights."""
    x = mx.random.normal((m, k))
    w = mx.random.normal((n, k))
    if dtype == "q4":
        wq, scales, biases = mx.quantize(w, group_size=64, bits=4)
        run = lambda: mx.quantized_matmul(x, wq, scales, biases, transpose=True, group_size=64, bits=4)  # noqa: E731
    else:
        x, w = x.astype(getattr(mx, dtype)), w.astype(getattr(mx, dtype))
        run = lambda: x @ w.T  # noqa: E731
    mx.eval(x, w)
    mx.eval(run())  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        mx.eval(run())
    seconds = (time.perf_counter() - start) / repeats
    return 2 * m * k * n / seconds / 1e9
