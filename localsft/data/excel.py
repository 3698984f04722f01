"""Excel .xlsx: find the sheet that holds the examples and read each cell as the spreadsheet shows it.

Rows stream (openpyxl read-only). Before openpyxl opens the file, the unzipped size of
every part is checked against MAX_PART_BYTES: a 1 MB file can unzip to gigabytes (a
"zip bomb"), and openpyxl reads the whole shared-strings table into memory. A cell longer
than MAX_CELL_CHARS is reported, not copied. One extra streaming pass over the chosen
sheet finds what read-only openpyxl does not give: merged cells (their value is repeated
down the rows of the range) and formulas whose result was never saved (reported as such).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import iterparse

from localsft.data.numfmt import cell_text
from localsft.data.readers import MAX_CELL_CHARS, Record, Source, header_names
from localsft.errors import UserError

MAX_PART_BYTES = 256 << 20  # unzipped size of one part (a sheet, the shared strings)
MAX_TOTAL_BYTES = 1 << 30  # unzipped size of the whole workbook
HEADER_SEARCH_ROWS = 20  # rows of a sheet looked at to find its header


def _check_zip(path: Path) -> None:
    """Refuse a workbook that unzips to more than the limits (the sizes zipfile enforces on reading)."""
    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"{path} is not a readable Excel .xlsx file ({type(err).__name__}).") from None
    big = max(parts, key=lambda p: p.file_size, default=None)
    total = sum(p.file_size for p in parts)
    if big and (big.file_size > MAX_PART_BYTES or total > MAX_TOTAL_BYTES):
        raise UserError(f"{path} unzips to {total / 2**20:,.0f} MB ({big.filename}: {big.file_size / 2**20:,.0f} MB), "
                        f"over the limit of {MAX_PART_BYTES >> 20} MB per part and {MAX_TOTAL_BYTES >> 20} MB in all. "
                        "Save the examples as CSV, or split them over several files.")


def _open(path: Path, data_only: bool = True):
    import openpyxl

    _check_zip(path)
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=data_only)
    except Exception as err:  # zipfile.BadZipFile, KeyError, InvalidFileException, ...
        raise UserError(f"{path} is not a readable Excel .xlsx file ({type(err).__name__}).") from None


def _visible(book) -> list:
    """Visible worksheets, the active one (what Excel opens on) first."""
    sheets = [ws for ws in book.worksheets if getattr(ws, "sheet_state", "visible") == "visible"]
    active = book.active
    return ([active] if active in sheets else []) + [ws for ws in sheets if ws is not active]


def sheet_names(path: str | Path) -> list[str]:
    """The visible sheets of a workbook, the active one first (for a sheet choice in the app)."""
    book = _open(Path(path))
    try:
        return [ws.title for ws in _visible(book)]
    finally:
        book.close()


def _header(ws) -> tuple[int, list[str]] | None:
    """(row number, texts) of the first non-blank row among the first rows of a sheet."""
    for number, cells in enumerate(ws.iter_rows(max_row=HEADER_SEARCH_ROWS), start=1):
        texts = [_short_text(c) for c in cells]
        if any(t.strip() for t in texts):
            return number, texts
    return None


def _short_text(cell) -> str:
    value = getattr(cell, "value", None)
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return ""
    return cell_text(value, getattr(cell, "number_format", "General"))


def _maps_by_name(texts: list[str]) -> bool:
    from localsft.data.mapping import detect_mapping

    try:
        return detect_mapping(header_names(texts))[1] is None
    except UserError:
        return False


def _pick_sheet(book, path: Path, sheet: str | None):
    """The named sheet, else the first visible one (active first) whose header names example columns."""
    if sheet is not None:
        if sheet not in book.sheetnames:
            raise UserError(f"{path} has no sheet named {sheet!r}; its sheets are: {', '.join(book.sheetnames)}.")
        return book[sheet], None
    sheets = _visible(book) or book.worksheets
    for ws in sheets:
        found = _header(ws)
        if found and _maps_by_name(found[1]):
            return ws, (None if ws is sheets[0] else
                        f"Read the sheet {ws.title!r}: it is the one whose columns hold examples "
                        f"(choose another with --sheet; sheets: {', '.join(s.title for s in sheets)}).")
    return sheets[0], None


_REF = re.compile(r"([A-Z]+)(\d+)")


def _cell_ref(ref: str) -> tuple[int, int]:
    """'B12' -> (row 12, column 2)."""
    letters, digits = _REF.fullmatch(ref).groups()
    column = 0
    for ch in letters:
        column = column * 26 + ord(ch) - 64
    return int(digits), column


def _scan_sheet(book, ws) -> tuple[dict[tuple[int, int], tuple[int, int]], set[tuple[int, int]]]:
    """Merged ranges ({cell: its range's top-left cell}) and cells holding a formula with no saved result."""
    merged, formulas = {}, set()
    with book._archive.open(ws._worksheet_path) as fh:  # read-only openpyxl does not expose either
        sheet_data = None
        for event, el in iterparse(fh, events=("start", "end")):
            tag = el.tag.rpartition("}")[2]
            if event == "start":
                sheet_data = el if tag == "sheetData" else sheet_data
                continue
            if tag == "c":
                kids = {k.tag.rpartition("}")[2]: k for k in el}
                if "f" in kids and not (kids.get("v") is not None and kids["v"].text) and "is" not in kids:
                    formulas.add(_cell_ref(el.get("r", "A1")))
                el.clear()
            elif tag == "row" and sheet_data is not None:
                sheet_data.clear()  # the rows read so far: memory stays flat however long the sheet
            elif tag == "mergeCell":
                first, _, last = el.get("ref", "").partition(":")
                if last:
                    (r1, c1), (r2, _) = _cell_ref(first), _cell_ref(last)
                    for r in range(r1, min(r2, r1 + 100_000) + 1):  # down the column: the value
                        merged[(r, c1)] = (r1, c1)  # a merge across columns shows once, in its first cell
                    if len(merged) > 1_000_000:
                        break
    return merged, formulas


def read_xlsx(path: Path, sheet: str | None) -> Source:
    book = _open(path)
    ws, note = _pick_sheet(book, path, sheet)
    found = _header(ws)
    if found is None:
        book.close()
        raise UserError(f"{path} (sheet {ws.title!r}) is empty.")
    number, texts = found
    columns = header_names(texts)
    merged, formulas = _scan_sheet(book, ws)
    sheets = [s.title for s in _visible(book)]
    return Source(path, "xlsx", _rows(book, ws, number, columns, merged, formulas), columns,
                  {"sheet": ws.title, "sheets": sheets}, [note] if note else [])


def _rows(book, ws, header_row: int, columns: list[str], merged: dict, formulas: set) -> Iterator[Record]:
    tops: dict[tuple[int, int], str] = {}  # the text of each merged range's top-left cell
    try:
        for line, cells in enumerate(ws.iter_rows(min_row=header_row + 1), start=header_row + 1):
            texts, problem = [], None
            for column, cell in enumerate(cells[:len(columns)], start=1):
                value = getattr(cell, "value", None)
                if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
                    problem = f"column {columns[column - 1]!r} holds more than {MAX_CELL_CHARS:,} characters"
                    break
                text = cell_text(value, getattr(cell, "number_format", "General"))
                key = (line, column)
                if key in merged:
                    text = tops.setdefault(merged[key], text) if merged[key] == key else tops.get(merged[key], "")
                elif key in formulas and not text:
                    problem = (f"column {columns[column - 1]!r} holds a formula whose result is not saved in the "
                               "file: open it in Excel or LibreOffice and save it again, or paste the column "
                               "as values")
                texts.append(text)
            if problem:
                yield Record(line, problem=problem)
            elif any(t.strip() for t in texts):
                yield Record(line, dict(zip(columns, texts)))
    finally:
        book.close()
