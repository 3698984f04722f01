"""Export folders: only the files localsft wrote are ever replaced or removed (issue 13)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest


from localsft.cli import main
from localsft.errors import UserError
from localsft.export import export_run
from localsft.manifest import MANIFEST


def test_re_export_keeps_the_files_the_user_added(tiny_run, tmp_path):
    out = tmp_path / "export"
    (first,) = export_run(tiny_run, "adapter", out=out)
    (out / "notes.txt").write_text("my notes")
    (out / "eval").mkdir()
    (out / "eval" / "answers.csv").write_text("a,b\n")
    (again,) = export_run(tiny_run, "adapter", out=out)
    assert (out / "notes.txt").read_text() == "my notes" and (out / "eval" / "answers.csv").exists()
    assert again.check.passed and set(again.files) == set(first.files)
    assert "notes.txt" not in again.files


def test_a_file_of_the_earlier_export_edited_by_the_user_is_not_overwritten(tiny_run, tmp_path):
    out = tmp_path / "export"
    export_run(tiny_run, "adapter", out=out)
    (out / "README.md").write_text("my own card")
    with pytest.raises(UserError, match="README.md was not written by localsft"):
        export_run(tiny_run, "adapter", out=out)
    assert (out / "README.md").read_text() == "my own card"
    assert (out / "adapters.safetensors").exists()  # the earlier export is left whole


def test_an_export_from_before_manifests_keeps_later_user_files(tiny_run, tmp_path):
    out = tmp_path / "export"
    export_run(tiny_run, "adapter", out=out)
    (out / MANIFEST).unlink()
    later = time.time_ns() + 10**9
    (out / "notes.txt").write_text("added later")
    os.utime(out / "notes.txt", ns=(later, later))
    export_run(tiny_run, "adapter", out=out)
    assert (out / "notes.txt").read_text() == "added later"


def test_a_q8_gguf_export_does_not_replace_the_full_precision_one(tiny_run):
    (full,) = export_run(tiny_run, "gguf")
    (q8,) = export_run(tiny_run, "gguf", quantize=8)
    assert full.path == tiny_run / "exports" / "gguf" and q8.path == tiny_run / "exports" / "gguf-q8_0"
    assert (full.path / "model-f32.gguf").exists() and (q8.path / "model-q8_0.gguf").exists()


@pytest.mark.parametrize("where", ["file", "under_file", "unwritable"])
def test_export_out_naming_a_file_or_an_unwritable_place_is_a_plain_message(tiny_run, tmp_path, capsys, where):
    existing = tmp_path / "model.bin"
    existing.write_bytes(b"keep me")
    out = {"file": existing, "under_file": existing / "sub", "unwritable": Path("/sys/localsft-export")}[where]
    code = main(["export", str(tiny_run), "--format", "adapter", "--out", str(out)])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and str(existing if where == "under_file" else out) in err
    assert existing.read_bytes() == b"keep me"


def test_push_uploads_the_export_not_the_files_the_user_added(tiny_run, monkeypatch):
    from test_push import TOKEN, fake_hub  # noqa: F401  (the fixture's server is started below)

    from localsft.export.push import push_run

    (result,) = export_run(tiny_run, "adapter")
    (result.path / "my-private-notes.txt").write_text("do not publish")
    server = next(fake_hub.__wrapped__(monkeypatch))
    try:
        push_run(tiny_run, "alice/tagline", token=TOKEN)
    finally:
        server.shutdown()
        server.server_close()
    assert "my-private-notes.txt" not in server.files and MANIFEST not in server.files
    assert {"README.md", "adapters.safetensors", "adapter_config.json"} <= set(server.files)
