"""Shared fixtures: an isolated localsft home, tiny random models, the real default model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import localsft  # noqa: E402,F401  (fast BLAS before any mlx import)
from tiny_model import make_tiny_model  # noqa: E402


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
    import_gguf(default_gguf_path(), out)
    return out
