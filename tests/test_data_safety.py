"""Files that are unreadable, outside the folder, or not localsft's: plain messages, nothing lost (issue 13)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localsft.cli import main
from localsft.data import DataError, check, prepare
from localsft.data.readers import file_in_folder
from localsft.errors import UserError

SECRET = "root:$y$j9T$Zx8SECRETHASH0123456789:19000:0:99999:7:::"
GOOD = "prompt,completion\n" + "".join(f"Question {i}?,Answer {i}.\n" for i in range(12))


def _without_privileges(code: str) -> subprocess.CompletedProcess:
    """Run Python code without root's power to read any file (file modes apply to it)."""
    drop = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"] if os.geteuid() == 0 else []
    if drop and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: every file is readable")
    return subprocess.run(drop + [sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_file_that_cannot_be_read_is_one_plain_message(tmp_path):
    path = tmp_path / "private.csv"
    path.write_text(GOOD)
    os.chmod(path, 0o000)
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
            "from localsft.data import check\nfrom localsft.errors import UserError\n"
            f"try:\n    check({str(path)!r})\nexcept UserError as err:\n    print('USER ERROR:', err)")
    done = _without_privileges(code)
    assert "Traceback" not in done.stderr, done.stderr
    assert f"USER ERROR: {path} cannot be read: Permission denied" in done.stdout


def test_error_messages_never_quote_the_file(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.write_text(SECRET + "\ndaemon:*:19000:0:99999:7:::\n")
    with pytest.raises(UserError) as caught:
        check(shadow)
    assert "SECRET" not in str(caught.value) and "Cannot tell which columns" in str(caught.value)
    two = tmp_path / "two.csv"
    two.write_text(f"{SECRET},x\n" + "".join(f"{SECRET}{i},y{i}\n" for i in range(12)))
    report = check(two)
    assert not any("SECRET" in p.message for p in report.problems)
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [' + json.dumps(SECRET) + ' oops')
    with pytest.raises(UserError) as caught:
        check(broken)
    assert "SECRET" not in str(caught.value) and "line 1" in str(caught.value)


def test_the_data_folder_reader_refuses_a_link_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"text": "private"}\n')
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").symlink_to(outside)
    (folder / "valid.jsonl").write_text('{"text": "fine"}\n')
    with pytest.raises(UserError, match="is a link to a file outside"):
        file_in_folder(folder, "train.jsonl")
    assert file_in_folder(folder, "valid.jsonl") == folder / "valid.jsonl"
    assert file_in_folder(folder, "test.jsonl") is None


@pytest.mark.parametrize("where", ["file", "under_file", "unwritable"])
def test_prepare_into_a_file_or_an_unwritable_place_is_a_plain_message(tmp_path, capsys, tiny_model_dir, where):
    data = tmp_path / "good.csv"
    data.write_text(GOOD)
    out = {"file": data, "under_file": data / "splits", "unwritable": Path("/sys/localsft-splits")}[where]
    code = main(["data", "prepare", str(data), "--out", str(out), "--model", str(tiny_model_dir)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and str(out) in err
    assert data.read_text() == GOOD


def test_a_failed_prepare_removes_the_splits_it_wrote_before(tmp_path):
    good, bad, out = tmp_path / "good.csv", tmp_path / "bad.csv", tmp_path / "splits"
    good.write_text(GOOD)
    bad.write_text("prompt,completion\n" + "".join(f"Question {i}?,\n" for i in range(12)))
    prepare(good, out)
    assert (out / "train.jsonl").exists()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError):
        prepare(bad, out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["notes.txt", "report.json"]
    with pytest.raises(UserError):
        prepare(tmp_path / "missing.csv", out)
    assert not (out / "report.json").exists() and (out / "notes.txt").read_text() == "mine"


def test_prepare_never_overwrites_a_split_file_the_user_wrote(tmp_path):
    good, out = tmp_path / "good.csv", tmp_path / "splits"
    good.write_text(GOOD)
    out.mkdir()
    (out / "train.jsonl").write_text('{"text": "my own"}\n')
    with pytest.raises(UserError, match="was not written by localsft"):
        prepare(good, out)
    assert (out / "train.jsonl").read_text() == '{"text": "my own"}\n'
    prepare(good, tmp_path / "fresh")
    (tmp_path / "fresh" / "valid.jsonl").write_text('{"text": "edited by hand"}\n')
    with pytest.raises(UserError, match="valid.jsonl was not written by localsft"):
        prepare(good, tmp_path / "fresh")


def test_training_from_a_data_folder_never_copies_a_linked_outside_file(tmp_path):
    from localsft.runs.folder import RunFolder
    from localsft.train.config import TrainConfig
    from localsft.train.setup import prepare_run_data

    outside = tmp_path / "private.jsonl"
    outside.write_text('{"text": "not for training"}\n')
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"text": "fine"}\n')
    (folder / "valid.jsonl").symlink_to(outside)
    run = RunFolder(tmp_path / "run")
    with pytest.raises(UserError, match="valid.jsonl is a link to a file outside"):
        prepare_run_data(TrainConfig(data=str(folder)), run, tokenizer=None)
    assert not (run.data_dir / "valid.jsonl").exists()
