"""Every malformed-input fixture: the problem is reported where it is, and the good rows stay.

The fixtures (tests/fixtures/data/malformed/, written by make_fixtures.py) hold 12 good
rows around one defect, unless the defect is the whole file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localsft.data import check
from localsft.errors import UserError
from localsft.models import load_tokenizer

MALFORMED = Path(__file__).parent / "fixtures" / "data" / "malformed"

# file, line reported, severity, words in the message, rows kept, trainable
ROW_CASES = [
    ("empty_output.csv", 6, "error", "empty output (column 'completion')", 12, True),
    ("whitespace_input.csv", 6, "error", "empty input (column 'prompt')", 12, True),
    ("missing_field.csv", 6, "error", "no output: column 'completion' is missing", 12, True),
    ("extra_fields.csv", 6, "error", "3 fields but the header has 2 (an unquoted comma", 12, True),
    ("undecodable.csv", 6, "error", "bytes that are not valid text", 12, True),
    ("cp1252_bad_bytes.csv", 15, "error", "bytes that are not valid text", 13, True),
    ("control_chars.csv", 6, "warning", "control characters removed (U+0007, U+001B)", 13, True),
    ("stray_nul.csv", 6, "warning", "control characters removed (U+0000)", 13, True),
    ("exact_duplicate.csv", 6, "error", "exact duplicate of row 3", 12, True),
    ("near_duplicate.csv", 6, "error", "duplicate of row 3 apart from case and spacing", 12, True),
    ("conflicting_output.csv", 6, "warning", "same input as row 3 but a different output", 13, True),
    ("unclosed_quote.csv", 14, "error", "a quote opened here is never closed", 12, True),
    ("stray_quote.csv", 6, "error", "not a valid table row", 12, True),
    ("invalid_json_line.jsonl", 5, "error", "not valid JSON (Expecting property name", 12, True),
    ("truncated.jsonl", 13, "error", "ends in the middle of a JSON object (truncated?)", 12, True),
    ("not_an_object.jsonl", 5, "error", "a list where a JSON object is expected", 12, True),
    ("missing_key.jsonl", 5, "error", "no output: column 'completion' is missing", 12, True),
    ("non_text_value.jsonl", 5, "error", "a dict in column 'completion' where text is expected", 12, True),
    ("chat_no_assistant.jsonl", 5, "error", "no assistant message", 12, True),
    ("chat_unknown_role.jsonl", 5, "error", "unknown role 'narrator'", 12, True),
    ("chat_empty_message.jsonl", 5, "error", "message 2 (assistant) is empty", 12, True),
    ("chat_not_a_list.jsonl", 5, "error", "should be a non-empty list of messages", 12, True),
    ("truncated_array.json", 46, "error", "ends in the middle of a JSON object (truncated?)", 11, True),
    ("invalid_array_item.json", 26, "error", "not valid JSON (Expecting ':' delimiter)", 11, True),
    ("too_long.jsonl", 5, "error", "the prompt alone is longer than the maximum of 128 tokens", 13, True),
    ("too_long.jsonl", 6, "warning", "longer than the maximum of 128: the last", 13, True),
    ("empty_cell.xlsx", 5, "error", "Row 5: empty output (column 'completion')", 12, True),
    ("all_rows_bad.csv", 2, "error", "empty input (column 'prompt')", 0, False),
    ("too_few.csv", None, "error", "Only 5 usable examples: at least 10 are needed", 5, False),
]

FILE_CASES = [
    ("empty.csv", "empty.csv is empty."),
    ("header_only.csv", "has a header but no rows"),
    ("binary.csv", "is a binary file, not a table or JSON text file"),
    ("not_a_zip.xlsx", "is not a readable Excel .xlsx file"),
    ("old_excel.xls", "is an old Excel .xls file: save it as .xlsx or CSV"),
    ("unknown_columns.csv", "Cannot tell which columns hold the inputs and the outputs (columns: alpha, beta, gamma)"),
    ("broken_document.json", "is not valid JSON: line 1"),
    ("no_such_file.csv", "does not exist"),
]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


@pytest.mark.parametrize("name, line, severity, words, kept, trainable", ROW_CASES)
def test_a_bad_row_is_reported_and_the_good_rows_are_kept(tok, name, line, severity, words, kept, trainable):
    report = check(MALFORMED / name, tokenizer=tok, max_seq_len=128)
    found = [p for p in report.problems if p.line == line and words in p.message]
    assert found, f"no {words!r} at line {line} in {[(p.line, p.message) for p in report.problems]}"
    assert found[0].severity == severity
    assert report.rows_kept == kept == len(report.examples)
    assert report.trainable is trainable
    assert all(e["messages"][-1]["content"].startswith("Product ") for e in report.examples[:4])


def test_the_row_around_a_removed_control_character_is_kept_clean(tok):
    report = check(MALFORMED / "control_chars.csv", tokenizer=tok)
    texts = [m["content"] for e in report.examples for m in e["messages"]]
    assert "Ring the bell now" in texts and "Done[0m." in texts


def test_numbers_in_spreadsheet_cells_become_text(tok):
    report = check(MALFORMED / "empty_cell.xlsx", tokenizer=tok)
    assert report.examples[-1]["messages"][-2:] == [{"role": "user", "content": "42"},
                                                     {"role": "assistant", "content": "3.5"}]


@pytest.mark.parametrize("name, words", FILE_CASES)
def test_a_broken_file_is_one_plain_message(name, words):
    with pytest.raises(UserError) as caught:
        check(MALFORMED / name)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)


def test_problem_counts_by_reason_are_in_the_stats(tok):
    report = check(MALFORMED / "all_rows_bad.csv", tokenizer=tok)
    assert report.stats["dropped"] == {"empty": 12}
    assert report.rows_read == 12 and not report.trainable
