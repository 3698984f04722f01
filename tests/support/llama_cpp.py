"""Real llama.cpp for GGUF checks: the prebuilt binaries of the npm package node-llama-cpp.

`.ci/setup --test` installs the package into `.venv/llama/node_modules`; on a machine
without node or without that folder, tests that need it skip with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("llama_cpp.mjs")
MODULES = Path(os.environ.get("NODE_LLAMA_CPP_MODULES")
               or Path(__file__).resolve().parents[2] / ".venv" / "llama" / "node_modules")


def missing_reason() -> str | None:
    """Why real llama.cpp cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (llama.cpp runs through the npm package node-llama-cpp)"
    if not (MODULES / "node-llama-cpp" / "dist" / "index.js").exists():
        return f"node-llama-cpp is not installed in {MODULES} (run `.ci/setup --test`)"
    return None


def run_llama_cpp(model: Path, tokenize: list[str] = (), prompts: list[dict] = (), timeout: int = 300) -> dict:
    """Load `model` in llama.cpp; tokenize texts and evaluate prompts (see llama_cpp.mjs for the shapes)."""
    request = {"model": str(model), "tokenize": list(tokenize), "prompts": list(prompts)}
    env = {**os.environ, "NODE_LLAMA_CPP_MODULES": str(MODULES)}
    done = subprocess.run(["node", str(SCRIPT)], input=json.dumps(request), capture_output=True, text=True,
                          env=env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"llama.cpp failed (rc {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)
