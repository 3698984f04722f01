"""Every model source works, and every failure is one plain sentence."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from localsft.cli import main
from localsft.errors import UserError
from localsft.models import add_model, list_models, load_model
from localsft.models.default import default_gguf_path


def test_add_local_folder_and_list(tiny_model_dir, capsys):
    info = add_model(str(tiny_model_dir), name="tiny")
    assert info.architecture == "llama" and info.size_bytes > 0
    assert [m.name for m in list_models()] == ["tiny"]
    loaded = load_model("tiny")
    assert loaded.precision.dtype == "float32"
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "SmolLM2-135M-Instruct" in out  # the default model is set up too


def test_add_gguf_file(capsys):
    assert main(["models", "add", str(default_gguf_path(install=False)), "--name", "smol"]) == 0
    assert "Added smol: llama, 135M parameters, 4-bit" in capsys.readouterr().out
    (info,) = [m for m in list_models() if m.name == "smol"]
    assert info.license == "apache-2.0" and info.source.endswith(".gguf")


def _fake_hub_cache(cache: Path, repo: str, model_dir: Path) -> None:
    """Lay out a Hugging Face hub cache entry, as `hf download` leaves it, without a network."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    entry = cache / f"models--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, entry / "snapshots" / commit)


def test_add_repo_id_from_offline_hub_cache(tiny_model_dir, tmp_path, monkeypatch):
    _fake_hub_cache(tmp_path / "hub", "tiny-org/tiny-llama", tiny_model_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    info = add_model("tiny-org/tiny-llama", progress=False)
    assert info.name == "tiny-llama" and info.source == "hf://tiny-org/tiny-llama"
    ours = load_model("tiny-llama")
    direct = load_model(str(tiny_model_dir))
    ids = [[1, 5, 9, 13]]
    import mlx.core as mx
    assert np.allclose(np.array(ours.model(mx.array(ids))), np.array(direct.model(mx.array(ids))))


def _error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ")
    return err


def test_missing_path_is_a_plain_message(capsys):
    err = _error(["models", "add", "./no/such/model.gguf"], capsys)
    assert "Not found: ./no/such/model.gguf" in err


def test_corrupt_gguf_is_a_plain_message(tmp_path, capsys):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(default_gguf_path(install=False).read_bytes()[:2_000_000])  # truncated download
    err = _error(["models", "add", str(broken)], capsys)
    assert "truncated, corrupt" in err
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 not a gguf at all")
    assert "is not a GGUF file" in _error(["models", "add", str(junk)], capsys)
    from localsft import paths
    assert sorted(p.name for p in paths.models_dir().iterdir()) == []  # nothing half-imported left


def test_unsupported_architecture(tmp_path, capsys):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "other.gguf"
    writer = gguf.GGUFWriter(str(path), "mamba")
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert "not supported yet: mamba" in _error(["models", "add", str(path)], capsys)


def test_no_network_fails_fast_with_a_hint(capsys):
    # HF_HUB_OFFLINE=1 (set for the test session) behaves like a machine without network.
    err = _error(["models", "add", "someone/some-model"], capsys)
    assert "no network connection" in err and "localsft models add /path/to/model-folder" in err


def test_unreachable_hub_fails_fast(monkeypatch, capsys):
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    err = _error(["models", "add", "someone/some-model"], capsys)
    assert time.perf_counter() - start < 30
    assert "Cannot download 'someone/some-model'" in err


def test_unknown_model_name_lists_the_store():
    with pytest.raises(UserError, match="Model not found: nope"):
        load_model("nope")
