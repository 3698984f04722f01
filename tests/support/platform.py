"""Facts of this project's Linux machines, as skip marks: elsewhere (a Mac, a GPU) those tests skip."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from localsft.platform.backend import backend_name
from localsft.platform.blas import find_openblas

LINUX_CPU = sys.platform.startswith("linux") and backend_name() == "CPU"
linux_cpu = pytest.mark.skipif(not LINUX_CPU, reason="checks MLX's CPU backend on Linux (no GPU here)")
openblas = pytest.mark.skipif(not (LINUX_CPU and find_openblas()),
                              reason="checks the OpenBLAS preload of Linux (libopenblas0-pthread not installed)")

CHROMIUM = "/usr/bin/chromium"
chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"the browser tests drive {CHROMIUM} (not installed)")
