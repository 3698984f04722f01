"""Every input shape reads back as the same normalized chat; column detection; prepare and splits; CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localsft.cli import main
from localsft.data import ColumnMapping, DataError, check, prepare
from localsft.errors import UserError
from localsft.models import load_tokenizer

FORMATS = Path(__file__).parent / "fixtures" / "data" / "formats"
THREE = [("Wie heißt die Hauptstadt von Frankreich?", "Paris."),
         ("Write a tagline for running shoes.", "Light, fast, yours.\nRun further."),
         ("Say \"hi\"; then stop.", "Hi | bye, 100% ✓ café")]
CHATS = [{"messages": [{"role": "user", "content": x}, {"role": "assistant", "content": y}]} for x, y in THREE]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


@pytest.mark.parametrize("name, details", [
    ("comma.csv", {"delimiter": "comma", "encoding": "utf-8"}),
    ("semicolon.csv", {"delimiter": "semicolon"}),
    ("tab.tsv", {"delimiter": "tab"}),
    ("tab_as.csv", {"delimiter": "tab"}),
    ("pipe.csv", {"delimiter": "pipe"}),
    ("bom.csv", {"encoding": "utf-8-sig"}),
    ("utf16.csv", {"encoding": "utf-16"}),
    ("utf16_no_bom.tsv", {"encoding": "utf-16-le"}),
    ("crlf.csv", {}),
    ("german.csv", {"mapping": {"input": "Frage", "output": "Antwort"}}),
    ("spanish.csv", {"mapping": {"input": "Pregunta", "output": "Respuesta"}}),
    ("sheets.xlsx", {"format": "xlsx", "sheet": "Examples", "mapping": {"input": "Question", "output": "Answer"}}),
    ("prompt_completion.jsonl", {"format": "jsonl", "mapping": {"input": "prompt", "output": "completion"}}),
    ("question_answer.jsonl", {"mapping": {"input": "question", "output": "answer"}}),
    ("input_output.jsonl", {"mapping": {"input": "input", "output": "output"}}),
    ("alpaca.json", {"format": "json", "mapping": {"input": "instruction", "output": "output", "context": "input"}}),
    ("array.json", {"format": "json"}),
    ("wrapped.json", {"format": "json"}),
    ("chat.jsonl", {"mapping": {"chat": "messages"}}),
    ("sharegpt.json", {"mapping": {"chat": "conversations"}}),
])
def test_every_format_reads_back_as_the_same_chats(tok, name, details):
    report = check(FORMATS / name, tokenizer=tok)
    assert report.examples == CHATS
    assert report.rows_read == 3 and not report.problems[1:]
    for key, value in details.items():
        assert report.stats[key] == value


def test_legacy_windows_1252_text_is_decoded(tok):
    report = check(FORMATS / "windows1252.csv", tokenizer=tok)
    assert report.stats["encoding"] == "cp1252" and report.examples == CHATS[:2]


def test_plain_text_rows_stay_text(tok):
    report = check(FORMATS / "text.jsonl", tokenizer=tok)
    assert report.examples == [{"text": f"{x} {y}"} for x, y in THREE]
    assert report.stats["tokens"]["input_output_ratio"] == 0  # every token is trained


def test_a_named_sheet_is_read(tmp_path):
    with pytest.raises(UserError, match="no sheet named 'Nope'; its sheets are: Examples, Notes"):
        check(FORMATS / "sheets.xlsx", sheet="Nope")
    with pytest.raises(UserError, match="has a header but no rows"):
        check(FORMATS / "sheets.xlsx", sheet="Notes")  # the other sheet holds one line of notes


def test_user_chosen_columns_and_system_prompt(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("id,brief,copy,voice\n1,Shoes,Run lighter.,Be bold.\n2,Coffee,Wake up.,\n")
    with pytest.raises(UserError, match="Cannot tell which columns"):
        check(path)
    with pytest.raises(UserError, match="There is no column 'nope'"):
        check(path, mapping=ColumnMapping(input="nope", output="copy"))
    report = check(path, mapping=ColumnMapping(input="brief", output="copy", system="voice"),
                   system_prompt="You write ad copy.")
    assert [e["messages"][0] for e in report.examples] == [{"role": "system", "content": "Be bold."},
                                                           {"role": "system", "content": "You write ad copy."}]


def test_two_unnamed_columns_are_guessed_and_the_guess_is_reported(tmp_path):
    path = tmp_path / "guess.csv"
    path.write_text("Spalte A;Spalte B\nHallo;Welt\n")
    report = check(path)
    assert report.stats["mapping"] == {"input": "Spalte A", "output": "Spalte B"}
    assert "Columns not recognised by name" in report.problems[0].message


def normalized_chat_file(tmp_path, n=40) -> Path:
    lines = [json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": f"Question {i}?  "},
                                      {"role": "assistant", "content": f"Answer {i}."},
                                      {"role": "user", "content": "And more?"},
                                      {"role": "assistant", "content": f"More {i}."}]}, ensure_ascii=False)
             for i in range(n)]
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_normalized_chat_jsonl_round_trips_unchanged(tok, tmp_path):
    path = normalized_chat_file(tmp_path)
    prepare(path, tmp_path / "out", tokenizer=tok)
    written = [line for split in ("train", "valid", "test")
               for line in (tmp_path / "out" / f"{split}.jsonl").read_text().splitlines()]
    assert sorted(written) == sorted(path.read_text().splitlines())
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report) >= {"rows_read", "rows_kept", "problems", "stats"}
    assert report["stats"]["splits"] == {"train": 32, "valid": 4, "test": 4}


def test_splits_are_deterministic_and_same_inputs_stay_together(tok, tmp_path):
    path = tmp_path / "pairs.csv"
    rows = [f"Prompt {i % 30},Answer {i}" for i in range(60)]  # each prompt twice, different answers
    path.write_text("prompt,completion\n" + "\n".join(rows) + "\n")

    def splits(seed, out):
        prepare(path, tmp_path / out, tokenizer=tok, seed=seed)
        return {s: (tmp_path / out / f"{s}.jsonl").read_text() for s in ("train", "valid", "test")}

    first, again, other = splits(0, "a"), splits(0, "b"), splits(1, "c")
    assert first == again and first != other
    prompts = {s: {json.loads(line)["messages"][0]["content"] for line in text.splitlines()}
               for s, text in first.items()}
    assert not prompts["train"] & prompts["valid"] and not prompts["train"] & prompts["test"]
    assert not prompts["valid"] & prompts["test"]
    assert [len(text.splitlines()) for text in first.values()] == [48, 6, 6]


def test_prepare_refuses_an_untrainable_set_but_writes_its_report(tmp_path):
    path = tmp_path / "few.csv"
    path.write_text("prompt,completion\na,b\nc,d\n")
    with pytest.raises(DataError, match="at least 10 are needed") as caught:
        prepare(path, tmp_path / "out")
    assert caught.value.report.rows_kept == 2
    assert (tmp_path / "out" / "report.json").exists() and not (tmp_path / "out" / "train.jsonl").exists()


def test_cli_check_exit_codes_and_json_keys(tiny_model_dir, tmp_path, capsys):
    good = normalized_chat_file(tmp_path)
    assert main(["data", "check", str(good), "--model", str(tiny_model_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report)[:5] == ["path", "rows_read", "rows_kept", "trainable", "problems"]
    assert report["rows_kept"] == 40 and report["stats"]["tokens"]["histogram"]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02\x03" * 100)
    assert main(["data", "check", str(bad), "--model", str(tiny_model_dir)]) == 1
    assert "is a binary file" in capsys.readouterr().err
    assert main(["data", "check", str(bad), "--model", str(tiny_model_dir), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"][0]["message"].endswith("JSON text file.")


def test_cli_prepare_and_preview(tiny_model_dir, tmp_path, capsys):
    good = normalized_chat_file(tmp_path)
    out = tmp_path / "splits"
    assert main(["data", "prepare", str(good), "--model", str(tiny_model_dir), "--out", str(out), "--seed", "3"]) == 0
    assert "splits: train 32, valid 4, test 4" in capsys.readouterr().out
    assert main(["data", "preview", str(good), "--model", str(tiny_model_dir), "--line", "2"]) == 0
    shown = capsys.readouterr().out
    assert "[[Answer 1.<|im_end|>]]" in shown and "[[More 1.<|im_end|>]]" in shown and "[[Question" not in shown


def test_length_statistics_and_histogram():
    from localsft.data.report import length_stats

    stats = length_stats([10, 20, 40, 3000], [5, 5, 5, 5], max_seq_len=2048)
    counts = {b["up_to"]: b["count"] for b in stats["histogram"]}
    assert counts[16] == counts[32] == counts[64] == counts[None] == 1 and counts[2048] == 0
    assert (stats["min"], stats["max"], stats["over_max_seq_len"], stats["tokens_per_epoch"]) == (10, 3000, 1, 3070)
    assert stats["input_output_ratio"] == round(3050 / 20, 2)


def test_the_text_report_says_what_was_kept_and_why_rows_went(tok):
    from localsft.data import format_report

    text = format_report(check(Path(__file__).parent / "fixtures/data/malformed/exact_duplicate.csv", tokenizer=tok))
    assert "rows read 13, kept 12, dropped 1" in text and "dropped (duplicate): 1" in text
    assert "error: Row 6: exact duplicate of row 3." in text and "trainable: yes" in text
    assert "tokens per epoch:" in text and "| #" in text


def test_the_check_cuts_where_training_cuts(tiny_model_dir, tmp_path, capsys):
    from localsft.train import TrainConfig

    limit = TrainConfig().max_seq_len
    words = " ".join(f"word{i}" for i in range(limit))  # far more tokens than training keeps
    path = tmp_path / "long.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Say it {i}."}, {"role": "assistant", "content": words}]}
            for i in range(12)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["data", "check", str(path), "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert f"(max_seq_len {limit})" in out and f"longer than the maximum of {limit}" in out
    assert check(path, tokenizer=str(tiny_model_dir)).stats["max_seq_len"] == limit
