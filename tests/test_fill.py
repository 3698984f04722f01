"""`localsft fill`: every row answered as the model alone answers it, in a file of the same kind."""

from __future__ import annotations

import csv
import json

import mlx_lm
import openpyxl
import pytest
from support.runs import make_run
from mlx_lm.tuner.utils import load_adapters

from localsft.cli import main
from localsft.errors import UserError
from localsft.fill import FillOptions, fill_file
from localsft.fill.output import printable
from localsft.inference.generate import SamplingSettings, chat_prompt

SHORT = SamplingSettings(max_tokens=12)
INPUTS = ["Write a tagline for our running shoes.", "What is the capital of France?",
          "", "what is two plus two? Answer briefly, please, in words.", "Paris"]


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "shoes", tiny_model_dir,
                    format_check={"regex": r"[^0-9]*"})


@pytest.fixture(scope="module")
def alone(tiny_model_dir, run_dir):
    """Greedy answers of the tuned and of the base model, each loaded alone with mlx-lm."""
    base, tokenizer = mlx_lm.load(str(tiny_model_dir))
    tuned, _ = mlx_lm.load(str(tiny_model_dir))
    load_adapters(tuned, str(run_dir / "adapters" / "best"))

    def answer(text: str, model=tuned) -> str:
        prompt = chat_prompt(tokenizer, [{"role": "user", "content": text}])
        answer = mlx_lm.generate(model, tokenizer, prompt, max_tokens=SHORT.max_tokens)
        return printable(answer).strip()  # the random tiny model writes control characters

    answer.base = lambda text: answer(text, base)
    return answer


def write_csv(path, rows, header=("sku", "prompt", "notes")):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path):
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.reader(fh))


def test_csv_rows_are_answered_like_the_model_alone_with_notes_for_empty_rows(run_dir, alone, tmp_path):
    data = write_csv(tmp_path / "new.csv", [[f"A{i}", text, "keep me"] for i, text in enumerate(INPUTS)])
    out = fill_file(str(run_dir), data, FillOptions(settings=SHORT, batch_size=2))
    assert out == tmp_path / "new.filled.csv"
    header, *rows = read_csv(out)
    assert header == ["sku", "prompt", "notes", "answer", "format ok"]
    assert [r[:3] for r in rows] == [[f"A{i}", text, "keep me"] for i, text in enumerate(INPUTS)]
    for row, text in zip(rows, INPUTS):
        if text:
            assert row[3] == alone(text) and row[4] in ("yes", "no")
    assert rows[2][3] == "(not answered: row 4: the input (column 'prompt') is empty)"


def test_xlsx_stays_xlsx_with_the_base_answer_beside_the_tuned_one(run_dir, alone, tmp_path, capsys):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Products"
    sheet.append(["Frage", "Kategorie"])
    for text in INPUTS[:2]:
        sheet.append([text, "shoes"])
    book.save(tmp_path / "in.xlsx")
    code = main(["fill", str(run_dir), "--data", str(tmp_path / "in.xlsx"), "--with-base",
                 "--max-tokens", str(SHORT.max_tokens), "--out", str(tmp_path / "out.xlsx")])
    assert code == 0 and "filled:" in capsys.readouterr().out
    filled = openpyxl.load_workbook(tmp_path / "out.xlsx")
    assert filled.sheetnames == ["Products"]
    values = list(filled["Products"].iter_rows(values_only=True))
    assert values[0] == ("Frage", "Kategorie", "answer", "base answer", "format ok")
    for row, text in zip(values[1:], INPUTS[:2]):
        assert row[:2] == (text, "shoes")
        assert row[2] == alone(text) and (row[3] or "") == alone.base(text)  # an empty cell reads as None
    assert values[1][2] != values[1][3]


def test_a_stopped_fill_resumes_at_the_first_missing_row(run_dir, tmp_path):
    data = write_csv(tmp_path / "in.csv", [[f"A{i}", f"{text} {i}", ""] for i, text in enumerate(INPUTS * 2)])
    whole = fill_file(str(run_dir), data, FillOptions(settings=SHORT, out=tmp_path / "whole.csv"))
    batches = []

    def stop_after_two_batches(progress):
        batches.append(progress.done)
        if len(batches) == 2:
            raise KeyboardInterrupt

    partial = tmp_path / "partial.csv"
    with pytest.raises(KeyboardInterrupt):
        fill_file(str(run_dir), data, FillOptions(settings=SHORT, out=partial, batch_size=3),
                  on_progress=stop_after_two_batches)
    assert len(read_csv(partial)) == 1 + 6  # nothing finished was lost
    with pytest.raises(UserError, match="already exists. Add --resume"):
        fill_file(str(run_dir), data, FillOptions(settings=SHORT, out=partial))
    seen = []
    fill_file(str(run_dir), data, FillOptions(settings=SHORT, out=partial, resume=True, batch_size=3),
              on_progress=lambda p: seen.append((p.started_at, p.done)))
    assert seen[0] == (6, 9)
    assert read_csv(partial) == read_csv(whole)


def test_resume_refuses_a_file_of_other_inputs(run_dir, tmp_path):
    data = write_csv(tmp_path / "in.csv", [["A", "Paris", ""]])
    other = write_csv(tmp_path / "other.csv", [["B", "Berlin", "", "x", "yes"]],
                      header=("sku", "prompt", "notes", "answer", "format ok"))
    with pytest.raises(UserError, match="answers a different input"):
        fill_file(str(run_dir), data, FillOptions(settings=SHORT, out=other, resume=True))
    assert read_csv(other)[1] == ["B", "Berlin", "", "x", "yes"]  # untouched


def test_jsonl_chat_rows_a_base_model_and_plain_errors(tiny_model_dir, alone, tmp_path):
    lines = [{"id": 1, "messages": [{"role": "user", "content": "Paris"}, {"role": "assistant", "content": "old"}]},
             {"id": 2, "messages": [1, 2]}, {"id": 3, "messages": [{"role": "user", "content": "Paris " * 300}]}]
    data = tmp_path / "chats.jsonl"
    data.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = fill_file(str(tiny_model_dir), data, FillOptions(settings=SamplingSettings(max_tokens=300)))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [list(r) for r in rows] == [["id", "messages", "answer"]] * 3
    assert rows[0]["messages"] == lines[0]["messages"] and rows[0]["answer"]
    assert rows[1]["answer"].startswith("(not answered: line 2: column 'messages' is not a list of chat messages")
    assert "more than the model's context of 512" in rows[2]["answer"]
    with pytest.raises(UserError, match="--with-base needs a run"):
        fill_file(str(tiny_model_dir), data, FillOptions(with_base=True, out=tmp_path / "x.jsonl"))
    with pytest.raises(UserError, match="no column 'prompt'"):
        fill_file(str(tiny_model_dir), data, FillOptions(input_column="prompt", out=tmp_path / "y.jsonl"))
    with pytest.raises(UserError, match="No run or model called 'nope'"):
        fill_file("nope", data)
