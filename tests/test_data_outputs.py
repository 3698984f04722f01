"""The data doctor flags outputs made of repeated text and outputs far longer than the rest."""

from __future__ import annotations

import csv
import json

from localsft.data import check, prepare
from localsft.models import load_tokenizer

SENTENCE = "Thank you for contacting our support team, we will get back to you shortly."


def _write(path, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["input", "output"])
        writer.writerows(rows)
    return path


def _rows(n=30):
    return [(f"Where is my order number {i}?", f"Order {i} left our warehouse on day {i % 7 + 1}.") for i in range(n)]


def test_a_cell_repeating_one_sentence_is_not_silently_ready(tiny_model_dir, tmp_path):
    rows = _rows() + [("My parcel is late.", " ".join([SENTENCE] * 60))]  # ~1,000 tokens of one sentence
    report = check(_write(tmp_path / "replies.csv", rows), tokenizer=load_tokenizer(str(tiny_model_dir)))
    line = len(rows) + 1  # the header is line 1
    at_row = [p for p in report.problems if p.line == line]
    assert any("repeats 'Thank you for contacting" in p.message and "60 times" in p.message for p in at_row)
    assert any("far longer than the rest" in p.message for p in at_row)
    whole = [p.message for p in report.problems if p.line is None]
    assert any("Look at these before training" in m and "repeat one piece of text: 1" in m for m in whole)


def test_far_longer_outputs_stay_out_of_the_held_out_splits(tiny_model_dir, tmp_path):
    long_answer = "A long answer with many different words: " + ", ".join(f"item {i}" for i in range(150))
    rows = _rows(40) + [(f"List everything for case {k}.", long_answer + f" case {k}") for k in range(3)]
    out = tmp_path / "splits"
    report = prepare(_write(tmp_path / "mixed.csv", rows), out, tokenizer=load_tokenizer(str(tiny_model_dir)),
                     valid_fraction=0.2, test_fraction=0.2, seed=3)
    assert len(report.stats["long_output_lines"]) == 3
    for split in ("valid", "test"):
        held = [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
        assert held and not any("item 149" in json.dumps(ex) for ex in held)
    assert (out / "train.jsonl").read_text().count("item 149") == 3
