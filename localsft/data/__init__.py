"""The data doctor: read example pairs in any common shape, check them, preview, split.

    readers.py   CSV/TSV/JSONL, streamed row by row, memory bounded
    formats.py   which reader a file needs (by content, then extension)
    jsonfile.py  JSON arrays and {"data": [...]} documents, streamed item by item
    excel.py     Excel .xlsx: the sheet with the examples, merged cells, formulas
    numfmt.py    a spreadsheet cell as the text it shows (number formats)
    mapping.py   which columns are input/output/system; a row -> normalized chat example
    checks.py    per-row and whole-set checks, minimum sizes
    template.py  chat template rendering, tokenization with the loss mask, preview
    split.py     deterministic train/valid/test splits
    report.py    DataReport, Problem, statistics, text rendering
    doctor.py    check() and prepare()
"""

from localsft.data.checks import MIN_EXAMPLES, RECOMMENDED_EXAMPLES
from localsft.data.doctor import DataError, check, prepare
from localsft.data.excel import sheet_names
from localsft.data.mapping import ColumnMapping
from localsft.data.report import DataReport, Problem, format_report
from localsft.data.template import TokenizedExample, preview, tokenize_chat, tokenize_example, tokenize_text

__all__ = ["MIN_EXAMPLES", "RECOMMENDED_EXAMPLES", "ColumnMapping", "DataError", "DataReport", "Problem",
           "TokenizedExample", "check", "format_report", "prepare", "preview", "tokenize_chat",
           "tokenize_example", "tokenize_text", "sheet_names"]
