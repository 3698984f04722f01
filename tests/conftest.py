"""Shared fixtures: an isolated localsft home, tiny random models, the real default model, a run folder.

Helpers live in tests/support/. The whole test run is offline and keeps every cache in a
temporary folder: the variables below are set unconditionally, before anything reads them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
_HF_HOME = tempfile.mkdtemp(prefix="localsft-tests-hf-")
os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "GRADIO_ANALYTICS_ENABLED": "False", "HF_HOME": _HF_HOME})

import localsft  # noqa: E402,F401  (fast BLAS before any mlx import)
from support.runs import make_export_run  # noqa: E402
from support.tiny_model import make_tiny_model  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def localsft_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty localsft home folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("LOCALSFT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer random llama (fp32) with a tiny BPE tokenizer and ChatML template."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def default_model_dir(tmp_path_factory) -> Path:
    """The real default model (SmolLM2-135M-Instruct) imported from its GGUF, once per session."""
    from localsft.models.default import default_gguf_path
    from localsft.models.gguf_import import import_gguf

    out = tmp_path_factory.mktemp("default") / "SmolLM2-135M-Instruct"
    import_gguf(default_gguf_path(install=False), out)
    return out


@pytest.fixture
def tiny_run(tiny_model_dir, tmp_path) -> Path:
    """A run folder on the tiny random model with the export tests' 2-layer LoRA adapter."""
    return make_export_run(tmp_path / "run", tiny_model_dir)
