"""Row numbers mean the row a spreadsheet shows, in every place that names one.

A CSV whose quoted cells hold line breaks puts example 7 on file line 12 while Excel,
Numbers and Google Sheets show it as row 8: the check, the studio's report, the preview,
the fill notes and the duplicate messages all say "row 8" (and "file line 12" for a text
editor), the same numbers the same examples get in an Excel file.
"""

from __future__ import annotations

import csv

import pytest

from localsft.cli import main
from localsft.data import check
from localsft.fill.inputs import read_inputs

# Rows 3 and 5 hold three-line answers, row 8 has no answer, row 10 repeats row 3.
ROWS = [["Product 0", "Answer 0."], ["Describe product 1", "Line one of 1.\nLine two.\nLine three."],
        ["Product 2", "Answer 2."], ["Describe product 3", "Line one of 3.\nLine two.\nLine three."],
        ["Product 4", "Answer 4."], ["Product 5", "Answer 5."], ["Product 6", ""], ["Product 7", "Answer 7."],
        ["Describe product 1", "Line one of 1.\nLine two.\nLine three."],
        *([f"Product {i}", f"Answer {i}."] for i in range(9, 13))]


@pytest.fixture
def spreadsheet_csv(tmp_path):
    """The rows as a spreadsheet app saves them: header first, cells with line breaks quoted."""
    path = tmp_path / "products.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows([["prompt", "completion"], *ROWS])
    assert path.read_text().splitlines()[11] == "Product 6,"  # file line 12 holds row 8
    return path


def test_a_bad_row_after_multi_line_cells_is_named_by_its_spreadsheet_row(spreadsheet_csv, tiny_model_dir):
    report = check(spreadsheet_csv, tokenizer=str(tiny_model_dir))
    messages = {p.row: p.message for p in report.problems if p.row is not None}
    assert messages[8] == "Row 8 (file line 12): empty output (column 'completion')."
    assert messages[10] == "Row 10 (file line 14): exact duplicate of row 3."
    assert [(p.row, p.line) for p in report.problems if p.row] == [(8, 12), (10, 14)]
    assert report.rows[:5] == [2, 3, 4, 5, 6] and report.rows[-1] == 14
    assert report.to_dict()["problems"][0]["row"] == 8


def test_excel_and_csv_name_the_same_rows(spreadsheet_csv, tmp_path, tiny_model_dir):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["prompt", "completion"])
    for row in ROWS:
        book.active.append(row)
    book.save(tmp_path / "products.xlsx")
    report = check(tmp_path / "products.xlsx", tokenizer=str(tiny_model_dir))
    assert [p.message for p in report.problems if p.row] == ["Row 8: empty output (column 'completion').",
                                                             "Row 10: exact duplicate of row 3."]
    assert report.rows == check(spreadsheet_csv, tokenizer=str(tiny_model_dir)).rows


def test_the_command_line_check_and_preview_use_the_spreadsheet_row(spreadsheet_csv, tiny_model_dir, capsys):
    assert main(["data", "check", str(spreadsheet_csv), "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "error: Row 8 (file line 12): empty output (column 'completion')." in out
    assert "error: Row 10 (file line 14): exact duplicate of row 3." in out
    assert main(["data", "preview", str(spreadsheet_csv), "--row", "9", "--model", str(tiny_model_dir)]) == 0
    shown = capsys.readouterr()
    assert "Product 7" in shown.out and "[[Answer 7." in shown.out
    assert "row 9 (file line 13): trained tokens" in shown.err
    assert main(["data", "preview", str(spreadsheet_csv), "--row", "8", "--model", str(tiny_model_dir)]) == 2
    assert "Row 8 of" in capsys.readouterr().err


def test_fill_notes_name_the_spreadsheet_row(spreadsheet_csv):
    spreadsheet_csv.write_text(spreadsheet_csv.read_text().replace("Product 6,", ",a note"))  # row 8: no input
    notes = [row.note for row in read_inputs(spreadsheet_csv).rows if row.note]
    assert notes == ["row 8 (file line 12): the input (column 'prompt') is empty"]


def test_in_json_lines_the_line_is_the_row(tmp_path, tiny_model_dir):
    path = tmp_path / "products.jsonl"
    path.write_text('{"prompt": "A?", "completion": "a"}\n\n{"prompt": "B?", "completion": ""}\n'
                    '{"prompt": "A?", "completion": "a"}\n')
    report = check(path, tokenizer=str(tiny_model_dir))
    assert [(p.row, p.line, p.message) for p in report.problems if p.row] == [
        (3, 3, "Line 3: empty output (column 'completion')."), (4, 4, "Line 4: exact duplicate of line 1.")]


def test_the_studio_report_and_preview_use_the_spreadsheet_row(spreadsheet_csv, tiny_model_dir):
    from localsft import paths
    from localsft_ui import data_tab

    upload = paths.uploads_dir() / spreadsheet_csv.name
    upload.write_bytes(spreadsheet_csv.read_bytes())
    report, _, _, problems, *_, row, chat, _, _, _ = data_tab.check_file(str(upload), None, None, None,
                                                                         str(tiny_model_dir))
    assert [r[:2] for r in problems] == [[8, "removed"], [10, "removed"]]
    assert problems[0][2] == "Row 8 (file line 12): empty output (column 'completion')."
    assert row["value"] == 2 and "Answer 0." in chat
    assert "Answer 7." in data_tab.preview_chat(report, 9)
    assert "Line two." in data_tab.preview_chat(report, 5)  # row 5 is example 4, on file lines 7 to 9
    assert "Row 8 was removed" in data_tab.preview_chat(report, 8)
