"""Read example files row by row: CSV/TSV (any common delimiter and encoding), Excel, JSONL, JSON.

Every reader streams: it yields one `Record` per row and keeps nothing behind it. A row
that cannot be read becomes a Record with a `problem` (so the report can list it and the
rows around it are kept); a file that cannot be read at all raises UserError.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from localsft.errors import UserError

SAMPLE_BYTES = 1 << 16
DELIMITERS = (",", ";", "\t", "|")
NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
csv.field_size_limit(1 << 24)  # long answers are fine; the default 128 KB limit is not


@dataclass
class Record:
    """One row: its line (or spreadsheet row) number and fields, or why it could not be read."""

    line: int
    data: dict | None = None
    problem: str | None = None


@dataclass
class Source:
    """An opened file: what it turned out to be, its columns (if tabular) and its rows."""

    path: Path
    format: str  # csv, xlsx, jsonl, json
    rows: Iterator[Record]
    columns: list[str] | None = None
    details: dict = field(default_factory=dict)  # encoding, delimiter, sheet


def sniff_encoding(head: bytes, path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 (BOM or NUL pattern), else Windows-1252."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\0" in head:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if odd > len(head) // 4 and even < odd // 10:
            return "utf-16-le"
        if even > len(head) // 4 and odd < even // 10:
            return "utf-16-be"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        encoding = "utf-8"
    except UnicodeDecodeError:
        text = head.decode("utf-8", errors="replace")
        bad = text.count("\ufffd")
        good = sum(1 for ch in text if ord(ch) > 127) - bad
        encoding = "utf-8" if good >= bad > 0 else "cp1252"  # mostly valid UTF-8: only a few broken bytes
    controls = sum(b < 32 and b not in b"\t\n\r" for b in head)
    if controls > max(8, len(head) // 50):  # a stray control character is a row problem; many mean binary
        raise UserError(f"{path} is a binary file, not a table or JSON text file.")
    return encoding


def open_text(path: Path, encoding: str):
    # Undecodable bytes survive as lone surrogates, so the row holding them can be reported.
    return open(path, encoding=encoding, errors="surrogateescape" if "utf-16" not in encoding else "replace",
                newline="")


def sniff_delimiter(sample: str, prefer_tab: bool) -> str:
    """The delimiter that splits the first rows into the same number (>1) of fields."""
    lines = sample.splitlines(keepends=True)
    sample = "".join(lines[:-1]) if len(lines) > 1 else sample  # the last line may be cut off
    best, best_score = "\t" if prefer_tab else ",", 0
    for delim in (("\t",) if prefer_tab else ()) + DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delim) if r][:50]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        score = sum(len(r) == len(rows[0]) for r in rows)
        if score > best_score:
            best, best_score = delim, score
    return best


def _header(row: list[str]) -> list[str]:
    names, seen = [], set()
    for i, cell in enumerate(row):
        name = cell.strip() or f"column {i + 1}"
        while name in seen:
            name += "_"
        names.append(name)
        seen.add(name)
    return names


def read_csv(path: Path, encoding: str, delimiter: str | None = None) -> Source:
    with open_text(path, encoding) as fh:
        sample = fh.read(SAMPLE_BYTES)
    prefer_tab = path.suffix.lower() in (".tsv", ".tab")
    delimiter = delimiter or sniff_delimiter(sample, prefer_tab)
    fh = open_text(path, encoding)
    reader = csv.reader(fh, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as err:
        fh.close()
        raise UserError(f"{path} is not a readable table: line 1: {err}.") from None
    if not header:
        fh.close()
        raise UserError(f"{path} is empty.")
    columns = _header(header)

    def rows() -> Iterator[Record]:
        with fh:
            last = reader.line_num
            while True:
                start = last + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as err:
                    yield Record(start, problem=_csv_problem(err, start, reader.line_num))
                    last = reader.line_num
                    continue
                last = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                if len(row) > len(columns):
                    yield Record(start, problem=f"{len(row)} fields but the header has {len(columns)} "
                                                f"(an unquoted {NAMES[delimiter]} in the text?)")
                    continue
                yield Record(start, dict(zip(columns, row)))

    return Source(path, "csv", rows(), columns, {"encoding": encoding, "delimiter": NAMES[delimiter]})


def _csv_problem(err: csv.Error, start: int, end: int) -> str:
    if "unexpected end of data" in str(err):
        return f"a quote opened here is never closed, so lines {start}-{end} could not be read"
    return f"not a valid table row ({err})"


def read_xlsx(path: Path, sheet: str | None) -> Source:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # zipfile.BadZipFile, KeyError, InvalidFileException, ...
        raise UserError(f"{path} is not a readable Excel .xlsx file ({type(err).__name__}: {err}).") from None
    if sheet is not None and sheet not in book.sheetnames:
        raise UserError(f"{path} has no sheet named {sheet!r}; its sheets are: {', '.join(book.sheetnames)}.")
    ws = book[sheet] if sheet else book.worksheets[0]
    cells = ws.iter_rows(values_only=True)
    header, number = None, 0
    for number, values in enumerate(cells, start=1):
        if any(v is not None and str(v).strip() for v in values):
            header = values
            break
    if header is None:
        book.close()
        raise UserError(f"{path} (sheet {ws.title!r}) is empty.")
    columns = _header(["" if v is None else str(v) for v in header])

    def rows() -> Iterator[Record]:
        for line, values in enumerate(cells, start=number + 1):
            texts = ["" if v is None else str(v) for v in values]
            if any(t.strip() for t in texts):
                yield Record(line, dict(zip(columns, texts)))
        book.close()

    return Source(path, "xlsx", rows(), columns, {"sheet": ws.title})


def read_jsonl(path: Path, encoding: str) -> Source:
    def rows() -> Iterator[Record]:
        with open_text(path, encoding) as fh:
            for line, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as err:
                    cut = not text.endswith("\n") and err.msg.startswith(("Expecting", "Unterminated"))
                    yield Record(line, problem="the file ends in the middle of a JSON object (truncated?)"
                                 if cut else f"not valid JSON ({err.msg}, column {err.colno})")
                    continue
                yield _object(line, value)

    return Source(path, "jsonl", rows(), None, {"encoding": encoding})


def _object(line: int, value) -> Record:
    if isinstance(value, dict):
        return Record(line, value)
    return Record(line, problem=f"a {type(value).__name__} where a JSON object is expected")


_NEXT_ITEM = re.compile(r"\}\s*,\s*(?=\{)")


def read_json(path: Path, encoding: str) -> Source:
    """A JSON array of objects, streamed item by item; or one object holding such a list."""
    with open_text(path, encoding) as fh:
        head = fh.read(SAMPLE_BYTES).lstrip("\ufeff \t\r\n")
    if not head.startswith("["):
        return _json_document(path, encoding)

    def rows() -> Iterator[Record]:
        with open_text(path, encoding) as fh:
            yield from _array_items(fh)

    return Source(path, "json", rows(), None, {"encoding": encoding})


def _array_items(fh) -> Iterator[Record]:
    """Items of a JSON array read chunk by chunk; a broken item is reported and skipped."""
    decoder = json.JSONDecoder()
    buf = fh.read(SAMPLE_BYTES)
    pos = buf.index("[") + 1
    line = 1 + buf.count("\n", 0, pos)
    eof = False

    def refill() -> bool:
        nonlocal buf, pos, eof
        more = "" if eof else fh.read(SAMPLE_BYTES)
        eof = not more
        if more:
            buf, pos = buf[pos:] + more, 0
        return bool(more)

    while True:
        stripped = len(buf) - len(buf[pos:].lstrip(" \t\r\n,"))
        line += buf.count("\n", pos, stripped)
        pos = stripped
        if pos >= len(buf):
            if refill():
                continue
            yield Record(line, problem="the file ends before the JSON array is closed (truncated?)")
            return
        if buf[pos] == "]":
            return
        try:
            value, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as err:
            if (err.pos > len(buf) - 1024 or err.msg.startswith("Unterminated")) and refill():
                continue  # the item goes on in the next chunk
            if eof and (err.msg.startswith("Unterminated") or err.pos >= len(buf.rstrip()) - 1):
                yield Record(line, problem="the file ends in the middle of a JSON object (truncated?)")
                return
            skip = _NEXT_ITEM.search(buf, err.pos)
            yield Record(line, problem=f"not valid JSON ({err.msg})" + ("" if skip else "; the rest of the file is skipped"))
            if not skip:
                return
            end = skip.end() - 1
            value = None
        if value is not None:
            yield _object(line, value)
        line += buf.count("\n", pos, end)
        pos = end


def _json_document(path: Path, encoding: str) -> Source:
    with open_text(path, encoding) as fh:
        try:
            value = json.load(fh)
        except json.JSONDecodeError as err:
            raise UserError(f"{path} is not valid JSON: line {err.lineno}: {err.msg}.") from None
    items = [value]
    if isinstance(value, dict):  # {"data": [...]} as some exporters write it
        lists = [v for v in value.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        items = lists[0] if len(lists) == 1 and "messages" not in value else [value]
    return Source(path, "json", iter(_object(1, item) for item in items), None, {"encoding": encoding})


def open_source(path: str | Path, sheet: str | None = None) -> Source:
    """Open an example file of any supported kind (chosen by content, then by extension)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path} does not exist." if not path.exists() else f"{path} is not a file.")
    with open(path, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    if not head.strip():
        raise UserError(f"{path} is empty.")
    suffix = path.suffix.lower()
    if head.startswith(b"PK\x03\x04"):
        return read_xlsx(path, sheet)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UserError(f"{path} is an old Excel .xls file: save it as .xlsx or CSV in Excel first.")
    if suffix in (".xlsx", ".xlsm"):
        raise UserError(f"{path} is not a readable Excel .xlsx file (it is not a zip archive).")
    encoding = sniff_encoding(head, path)
    text = head.decode(encoding.replace("-sig", ""), errors="ignore").lstrip("\ufeff \t\r\n")
    first, _, rest = text.partition("\n")
    if suffix in (".jsonl", ".ndjson") or (text[:1] == "{" and _is_json(first) and (rest.strip() or suffix != ".json")):
        return read_jsonl(path, encoding)
    if suffix == ".json" or text[:1] in ("[", "{"):
        return read_json(path, encoding)
    return read_csv(path, encoding)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except json.JSONDecodeError:
        return False
