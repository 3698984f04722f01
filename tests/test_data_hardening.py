"""Inputs that lost or rewrote valid rows before the readers were hardened (issue 13).

Fixtures: tests/fixtures/data/lost/ (written by make_hardening.py). Before the fix these
kept 0-200 of their rows; every valid row must now be kept, with the text as written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from localsft.data import check, sheet_names

FIXTURES = Path(__file__).parent / "fixtures" / "data"
LOST = FIXTURES / "lost"
sys.path.insert(0, str(FIXTURES))
from make_hardening import ROWS  # noqa: E402


def _texts(report, role: str) -> list[str]:
    return [m["content"] for e in report.examples for m in e["messages"] if m["role"] == role]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_valid_row_is_kept(name):
    report = check(LOST / name)
    assert report.rows_kept == ROWS[name], [p.message for p in report.problems][:5]


def test_windows_1252_whose_first_accent_comes_after_64_kb_is_decoded():
    report = check(LOST / "cp1252_late.csv")
    assert report.stats["encoding"] == "cp1252"
    assert "Un café crème à 39 € : doux, léger, très français." in _texts(report, "assistant")


def test_utf16_without_bom_in_cyrillic_and_chinese_is_text_not_binary():
    report = check(LOST / "utf16_no_bom.tsv")
    assert report.stats["encoding"] == "utf-16-le"
    assert "Как называется город номер 0?" in _texts(report, "user")
    assert "第19号茶清香回甘，适合早晨饮用。" in _texts(report, "assistant")


def test_utf16_big_endian_chinese_without_bom(tmp_path):
    path = tmp_path / "be.tsv"
    path.write_bytes("问题\t回答\n".encode("utf-16-be") + "".join(f"第{i}个问题？\t第{i}个回答。\n"
                                                            for i in range(12)).encode("utf-16-be"))
    report = check(path)
    assert report.stats["encoding"] == "utf-16-be" and report.rows_kept == 12


def test_the_sheet_holding_examples_is_read_behind_a_readme_sheet():
    report = check(LOST / "readme_sheet.xlsx")
    assert report.stats["sheet"] == "Examples" and report.stats["sheets"] == ["README", "Examples"]
    assert any("Read the sheet 'Examples'" in p.message for p in report.problems)
    assert sheet_names(LOST / "readme_sheet.xlsx") == ["README", "Examples"]


def test_a_hidden_sheet_is_never_read_the_visible_active_one_is():
    report = check(LOST / "hidden_sheet.xlsx")
    assert report.stats["sheet"] == "Current"
    assert "Stale answer from last year." not in _texts(report, "assistant")
    assert sheet_names(LOST / "hidden_sheet.xlsx") == ["Current"]


def test_rows_after_an_unbalanced_quote_are_read_and_the_line_is_reported():
    report = check(LOST / "unbalanced_quote.csv")
    problem = next(p for p in report.problems if p.line == 14)
    assert "a quote opened here is never closed" in problem.message and "line 15" in problem.message
    assert "Model 119: a chair that fits any room and lasts for years." in _texts(report, "assistant")
    assert "broken model" not in " ".join(_texts(report, "user"))  # the message names the line, not its text
    assert "broken model" not in problem.message


def test_a_quote_closed_by_a_later_line_loses_only_its_own_line(tmp_path):
    path = tmp_path / "mid.csv"
    rows = [f"Prompt {i},Answer {i}\n" for i in range(10)]
    path.write_text("prompt,completion\n" + "".join(rows[:4]) + '"Broken prompt,Broken answer\n' + "".join(rows[4:])
                    + '"Quoted, prompt 10","Answer, 10"\n')
    report = check(path)
    assert report.rows_kept == 11
    assert [p.line for p in report.problems if p.severity == "error"] == [6]


def test_a_jsonl_file_that_changes_shape_halfway_keeps_both_halves():
    report = check(LOST / "shape_change.jsonl")
    assert report.rows_kept == 40
    assert any("Line 21: the rows change shape here" in p.message for p in report.problems)


def test_formulas_without_saved_results_are_named_as_such():
    report = check(LOST / "formulas.xlsx")
    found = [p for p in report.problems if p.line is not None]
    assert [p.line for p in found] == list(range(14, 21))
    assert all("holds a formula whose result is not saved" in p.message and "save it again" in p.message
               for p in found)


def test_merged_cells_give_their_value_to_every_row_of_the_range():
    report = check(LOST / "merged.xlsx")
    answers = dict(zip(report.lines, _texts(report, "assistant")))
    assert answers[6] == answers[7] == answers[8] == "Model 404: a vase that fits any room and lasts for years."


def test_a_csv_without_a_header_line_keeps_its_first_row():
    report = check(LOST / "headerless.csv")
    assert report.stats["header"] is False
    assert _texts(report, "user")[0] == "Describe kettle model 0 in one line for the catalogue please."
    assert any("read as one" in p.message for p in report.problems)


def test_spreadsheet_cells_read_as_the_spreadsheet_shows_them():
    report = check(LOST / "formatted.xlsx")
    assert _texts(report, "assistant") == ["50%", "12.5%", "TRUE", "FALSE", "1,234.50", "2026-11-29",
                                           "29 November 2026 3:05 PM", "$1,235"]


def test_the_cli_report_names_the_sheet_read_and_the_others(tiny_model_dir, capsys):
    from localsft.cli import main

    assert main(["data", "check", str(LOST / "readme_sheet.xlsx"), "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "sheet Examples (sheets: README, Examples; choose one with --sheet)" in out
    assert main(["data", "check", str(LOST / "readme_sheet.xlsx"), "--sheet", "README",
                 "--model", str(tiny_model_dir)]) == 1
    assert "Cannot tell which columns" in capsys.readouterr().err
