"""Read example files row by row: CSV/TSV (any common delimiter and encoding), Excel, JSONL, JSON.

Every reader streams: it yields one `Record` per row and keeps nothing behind it. A row
that cannot be read becomes a Record with a `problem` (so the report can list it and the
rows around it are kept); a file that cannot be read at all raises UserError.

Memory is bounded whatever the file holds: lines, cells and JSON items are cut off at the
limits below (the row is reported), so a crafted file cannot make the reader hold more
than a few times MAX_CELL_CHARS. Messages name the file, line and column, never the
file's text (the file may not be the user's own).
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
MAX_CELL_CHARS = 1_000_000  # one input or output: far longer than any model's context
MAX_LINE_CHARS = 4 * MAX_CELL_CHARS  # one physical line of a CSV or JSONL file
MAX_FILE_BYTES = 1 << 30  # one file of examples
MAX_ROWS = 250_000  # rows of one file (the kept examples stay in memory: about 1 KB each)
DELIMITERS = (",", ";", "\t", "|")
NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
csv.field_size_limit(MAX_CELL_CHARS)


@dataclass
class Record:
    """One row: the file line it starts on, its fields (or why it could not be read), and its row.

    `row` is the row a spreadsheet shows (header row 1, first example row 2). It differs from
    `line` only in CSV/TSV files whose quoted cells hold line breaks; in Excel `line` is the
    sheet row, and in JSON/JSONL files the line is the row.
    """

    line: int
    data: dict | None = None
    problem: str | None = None
    row: int = 0  # 0: the same as line

    def __post_init__(self):
        self.row = self.row or self.line


@dataclass
class Source:
    """An opened file: what it turned out to be, its columns (if tabular) and its rows."""

    path: Path
    format: str  # csv, xlsx, jsonl, json
    rows: Iterator[Record]
    columns: list[str] | None = None
    details: dict = field(default_factory=dict)  # encoding, delimiter, sheet, sheets, header
    notes: list[str] = field(default_factory=list)  # what the reader decided that the user should know


def _is_utf16_text(head: bytes, codec: str) -> bool:
    """Does `head` read as lines of text in this UTF-16 byte order (no BOM, any script)?"""
    try:
        text = head[:len(head) // 2 * 2].decode(codec)
    except UnicodeDecodeError:
        return False
    if "\n" not in text and "\r" not in text:
        return False
    odd = sum(not (ch.isprintable() or ch in "\t\r\n") or "\ud800" <= ch <= "\udfff" for ch in text)
    return odd <= len(text) // 200  # the other byte order gives unassigned and control characters


def _utf8_or_cp1252(path: Path) -> str:
    """UTF-8 unless the whole file has more broken UTF-8 sequences than valid non-ASCII ones.

    The whole file, not its first 64 KB: a Windows-1252 file whose first accent comes late
    would otherwise have every accented row rejected as undecodable.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")  # a broken byte -> a lone surrogate
    bad = good = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            text = decoder.decode(chunk)
            broken = sum("\udc80" <= ch <= "\udcff" for ch in text if ch >= "\ud800")  # a real U+FFFD is text
            bad += broken
            good += len(text) - len(text.encode("ascii", "ignore")) - broken
    return "utf-8" if bad == 0 or good >= bad else "cp1252"  # mostly valid UTF-8: only a few broken bytes


def sniff_encoding(head: bytes, path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 (BOM, NUL pattern or text either way), else Windows-1252."""
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
    controls = sum(b < 32 and b not in b"\t\n\r" for b in head)
    many = controls > max(8, len(head) // 50)  # a stray control character is a row problem; many mean binary
    if many or b"\0" in head:  # or UTF-16 without a BOM in a non-Latin script (few or no NUL bytes)
        for codec in ("utf-16-le", "utf-16-be"):
            if _is_utf16_text(head, codec):
                return codec
    if many:
        raise UserError(f"{path} is a binary file, not a table or JSON text file.")
    return _utf8_or_cp1252(path)


def open_text(path: Path, encoding: str):
    # Undecodable bytes survive as lone surrogates, so the row holding them can be reported.
    return open(path, encoding=encoding, errors="surrogateescape" if "utf-16" not in encoding else "replace",
                newline="")


class Lines:
    """The physical lines of a text file, numbered, each at most MAX_LINE_CHARS long.

    A longer line is read past in pieces and replaced by an empty line (its number is kept
    in `too_long`). The lines of the current record are kept (`record`, since `mark()`) so
    that a reader can go back and read them again (`replay`).
    """

    def __init__(self, fh):
        self.fh, self.number, self.read = fh, 0, 0
        self.back: list[tuple[int, str]] = []
        self.record: list[tuple[int, str]] = []
        self.too_long: set[int] = set()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.back:
            self.number, text = self.back.pop()
        else:
            text = self.fh.readline(MAX_LINE_CHARS)
            if not text:
                raise StopIteration
            self.read += 1
            self.number = self.read
            if len(text) == MAX_LINE_CHARS and not text.endswith("\n"):
                while (rest := self.fh.readline(MAX_LINE_CHARS)) and not rest.endswith("\n"):
                    pass
                self.too_long.add(self.number)
                text = "\n"
        self.record.append((self.number, text))
        return text

    def mark(self) -> None:
        self.record = []

    def replay(self, lines: list[tuple[int, str]]) -> None:
        self.back.extend(reversed(lines))


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


def header_names(row: list[str]) -> list[str]:
    """Column names from a header row: blanks become "column N", repeats get a suffix."""
    names, seen = [], set()
    for i, cell in enumerate(row):
        name = cell.strip() or f"column {i + 1}"
        while name in seen:
            name += "_"
        names.append(name)
        seen.add(name)
    return names


_SENTENCE = re.compile(r"[.?!:;]\s|[.?!]$|\n")


def looks_like_data(row: list[str]) -> bool:
    """A first row that is an example, not column names: long cells or sentences, no known name."""
    from localsft.data.mapping import known_column

    cells = [c.strip() for c in row]
    if any(known_column(c) for c in cells if c):
        return False
    return any(len(c) > 40 or _SENTENCE.search(c) for c in cells)


def read_csv(path: Path, encoding: str, delimiter: str | None = None) -> Source:
    with open_text(path, encoding) as fh:
        sample = fh.read(SAMPLE_BYTES)
    prefer_tab = path.suffix.lower() in (".tsv", ".tab")
    delimiter = delimiter or sniff_delimiter(sample, prefer_tab)
    fh = open_text(path, encoding)
    lines = Lines(fh)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error:
        fh.close()
        raise UserError(f"{path} is not a readable table: line 1 is not a valid table row.") from None
    if not header:
        fh.close()
        raise UserError(f"{path} is empty.")
    details = {"encoding": encoding, "delimiter": NAMES[delimiter]}
    first = None
    if len(header) == 2 and looks_like_data(header):
        first, header = Record(1, dict(zip(("column 1", "column 2"), header))), ["", ""]
        details["header"] = False
    columns = header_names(header)
    return Source(path, "csv", _csv_rows(fh, lines, reader, columns, delimiter, first), columns, details,
                  ["The first line looks like an example, not column names, so it is read as one "
                   "(add a header line to name the columns)."] if first else [])


def _csv_rows(fh, lines: Lines, reader, columns: list[str], delimiter: str, first: Record | None):
    with fh:
        if first:
            yield first
        number = 1  # the spreadsheet row: one per record, blank ones too (a spreadsheet shows them)
        while True:
            lines.mark()
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                row = err
            number += 1
            start, spanned = lines.record[0][0], lines.record[1:]
            if start in lines.too_long:
                yield Record(start, problem=f"the line is longer than {MAX_LINE_CHARS:,} characters", row=number)
                continue
            if spanned and (isinstance(row, csv.Error) or len(row) != len(columns)):
                # A quote that is never closed swallows the lines after it: read them again on their own.
                lines.replay(spanned)
                yield Record(start, problem=f"a quote opened here is never closed; the line is skipped "
                                            f"and reading goes on at line {start + 1}", row=number)
                continue
            if isinstance(row, csv.Error):
                yield Record(start, problem=_csv_problem(row), row=number)
                continue
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if len(row) > len(columns):
                yield Record(start, problem=f"{len(row)} fields but the header has {len(columns)} "
                                            f"(an unquoted {NAMES[delimiter]} in the text?)", row=number)
                continue
            yield Record(start, dict(zip(columns, row)), row=number)


def place(fmt: str, row: int, line: int) -> str:
    """Where a row is, as messages say it: "Row 5" in a table (CSV/TSV, Excel), with "(file line 9)" when
    quoted line breaks put it on another line of the text file; "Line 5" in JSON and JSONL files."""
    if fmt == "xlsx" or (fmt == "csv" and row == line):
        return f"Row {row}"
    if fmt == "csv":
        return f"Row {row} (file line {line})"
    return f"Line {line}"


def _csv_problem(err: csv.Error) -> str:
    if "field larger than field limit" in str(err):
        return f"a cell longer than {MAX_CELL_CHARS:,} characters"
    return f"not a valid table row ({err})"  # the csv module's messages never quote the text


def read_jsonl(path: Path, encoding: str) -> Source:
    def rows() -> Iterator[Record]:
        with open_text(path, encoding) as fh:
            lines = Lines(fh)
            for text in lines:
                if lines.number in lines.too_long:
                    yield Record(lines.number, problem=f"the line is longer than {MAX_LINE_CHARS:,} characters")
                    continue
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except RecursionError:
                    yield Record(lines.number, problem="JSON nested too deeply to be an example")
                    continue
                except json.JSONDecodeError as err:
                    cut = not text.endswith("\n") and err.msg.startswith(("Expecting", "Unterminated"))
                    yield Record(lines.number, problem="the file ends in the middle of a JSON object (truncated?)"
                                 if cut else f"not valid JSON ({err.msg}, column {err.colno})")
                    continue
                yield json_object(lines.number, value)

    return Source(path, "jsonl", rows(), None, {"encoding": encoding})


def json_object(line: int, value) -> Record:
    """A parsed JSON value as a row: objects are rows, anything else is reported."""
    if isinstance(value, dict):
        return Record(line, value)
    return Record(line, problem=f"a {type(value).__name__} where a JSON object is expected")


def file_in_folder(folder: Path, name: str) -> Path | None:
    """folder/name if it is a file inside `folder` (a link that leads out of it is refused), else None."""
    path = Path(folder) / name
    if not path.is_file():
        return None
    if not path.resolve().is_relative_to(Path(folder).resolve()):
        raise UserError(f"{path} is a link to a file outside {folder}; copy the file into the folder instead.")
    return path
