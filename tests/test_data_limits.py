"""Crafted files cannot make the data check exhaust memory or hang the app (issue 13).

The real bombs (a 1 MB .xlsx whose shared string unzips to 1 GiB, a 20 MB JSON of tiny
rows) are measured in benchmarks/data.py; these tests use smaller ones and lowered limits.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import pytest

from localsft.data import check, doctor, excel
from localsft.data.isolated import check_isolated
from localsft.errors import UserError
from localsft.models import load_tokenizer

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "data"))
from make_hardening import json_bomb, shared_string_bomb  # noqa: E402

LOST = Path(__file__).parent / "fixtures" / "data" / "lost"
GOOD = [f"Question {i}?,Answer {i}.\n" for i in range(12)]


def test_an_xlsx_that_unzips_past_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(excel, "MAX_PART_BYTES", 8 << 20)
    path = tmp_path / "bomb.xlsx"
    shared_string_bomb(path, string_mb=16, links=2000)
    assert path.stat().st_size < 200_000
    import openpyxl  # noqa: F401  (its import is not the file's cost)

    tracemalloc.start()
    with pytest.raises(UserError, match=r"bomb.xlsx unzips to 16 MB \(xl/sharedStrings.xml: 16 MB\), over the limit"):
        check(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 << 20


def test_a_shared_string_longer_than_a_cell_may_be_is_reported_not_copied(tmp_path):
    path = tmp_path / "linked.xlsx"
    shared_string_bomb(path, string_mb=2, links=40)  # one 2 MB string used by 40 cells
    tracemalloc.start()
    report = check(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert report.rows_kept == 0 and report.stats["dropped"] == {"unreadable": 40}
    assert "Row 2: column 'completion' holds more than 1,000,000 characters." in [p.message for p in report.problems]
    assert peak < 40 << 20  # the string once (openpyxl's table), never once per row


def test_overlong_cells_lines_and_items_are_reported_and_the_rest_kept(tmp_path):
    csv_path = tmp_path / "cell.csv"
    csv_path.write_text("prompt,completion\n" + "".join(GOOD[:4]) + "Long one?," + "x" * 1_200_000 + "\n"
                        + "".join(GOOD[4:]))
    report = check(csv_path)
    assert report.rows_kept == 12 and any("a cell longer than 1,000,000 characters" in p.message
                                          for p in report.problems)
    jsonl = tmp_path / "line.jsonl"
    rows = [f'{{"prompt": "Q{i}?", "completion": "A{i}."}}\n' for i in range(12)]
    jsonl.write_text("".join(rows[:5]) + '{"prompt": "' + "y" * 5_000_000 + '"}\n' + "".join(rows[5:]))
    report = check(jsonl)
    assert report.rows_kept == 12
    assert "Line 6: the line is longer than 4,000,000 characters." in [p.message for p in report.problems]


def test_json_nested_without_end_is_a_plain_message(tmp_path):
    for name, text in {"deep.json": "[" * 200_000, "deep.jsonl": '{"a": ' + "[" * 200_000 + "\n",
                       "deep_doc.json": '{"data": ' + "[" * 200_000 + "]" * 200_000 + "}"}.items():
        path = tmp_path / name
        path.write_text(text)
        try:
            report = check(path)
        except UserError as err:
            assert "nested too deeply" in str(err) or "not valid JSON" in str(err), str(err)
        else:
            assert not report.trainable


def test_a_wrapped_json_list_is_streamed_not_built(tmp_path):
    array, wrapped = tmp_path / "array.json", tmp_path / "wrapped.json"
    json_bomb(array, megabytes=1)
    json_bomb(wrapped, megabytes=1, wrapped=True)
    peaks = {}
    for path in (array, wrapped):
        tracemalloc.start()
        report = check(path)
        peaks[path.name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert report.rows_kept > 20_000
    assert peaks["wrapped.json"] < 1.08 * peaks["array.json"]  # json.load of the whole object: 1.16x


def test_a_file_with_more_rows_than_the_limit_cannot_be_trained(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "MAX_ROWS", 100)
    path = tmp_path / "many.csv"
    path.write_text("prompt,completion\n" + "".join(f"Q{i}?,A{i}.\n" for i in range(150)))
    report = check(path)
    assert report.rows_read == 100 and not report.trainable
    assert any("More than 100 rows" in p.message for p in report.problems)


def test_the_isolated_check_gives_the_same_report(tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    for name in ("unbalanced_quote.csv", "formulas.xlsx", "shape_change.jsonl"):
        here, there = check(LOST / name, tokenizer=tok), check_isolated(LOST / name, tokenizer=tok)
        assert there.to_dict() == here.to_dict() and there.examples == here.examples


def test_the_isolated_check_stops_a_file_that_needs_too_much_memory(tmp_path):
    path = tmp_path / "rows.json"
    json_bomb(path, megabytes=8)  # ~200,000 kept rows: about 250 MB
    with pytest.raises(UserError, match="Checking rows.json needs more than 300 MB of memory, so it was stopped"):
        check_isolated(path, memory_mb=300)


def test_the_isolated_check_stops_at_its_time_limit_and_passes_plain_messages():
    with pytest.raises(UserError, match="took longer than 0.01 s, so it was stopped"):
        check_isolated(LOST / "merged.xlsx", seconds=0.01)
    with pytest.raises(UserError, match="does not exist"):
        check_isolated(LOST / "no_such_file.csv")


def test_the_isolated_check_reads_ordinary_files_well_within_a_small_limit():
    for name in ("headerless.csv", "formatted.xlsx", "shape_change.jsonl"):
        assert check_isolated(LOST / name, memory_mb=300).rows_kept > 0  # so 300 MB above is the file's doing
