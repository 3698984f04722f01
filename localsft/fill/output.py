"""The filled file: the same kind as the input, every original column in order plus ours.

The whole file is rewritten atomically after every batch of rows (a temporary file, then
a rename), so at any moment it holds every row answered so far and never half a row: a
stop or a crash loses nothing, and `resume` reads it back with the same readers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path

from localsft.data.formats import open_source
from localsft.data.readers import place
from localsft.errors import UserError

ANSWER, BASE_ANSWER, FORMAT_OK = "answer", "base answer", "format ok"
DELIMITERS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def printable(text: str) -> str:
    """`text` without control characters (a model can write them; Excel cells and most
    readers refuse them, and a NUL makes a CSV look binary)."""
    return _CONTROL.sub("", text)


def added_columns(columns: list[str], with_base: bool, format_check: bool) -> list[str]:
    """Our columns, renamed when the input already has a column of that name."""
    ours = [ANSWER] + ([BASE_ANSWER] if with_base else []) + ([FORMAT_OK] if format_check else [])
    return [name if name not in columns else f"{name} (localsft)" for name in ours]


def default_output(path: Path) -> Path:
    """`inputs.xlsx` -> `inputs.filled.xlsx`, beside the input."""
    return path.with_name(f"{path.stem}.filled{path.suffix or '.csv'}")


def write_table(path: Path, kind: str, details: dict, columns: list[str], rows: list[dict]) -> None:
    """Write `rows` (dicts over `columns`) as a file of kind csv/xlsx/jsonl/json, atomically."""
    if kind == "xlsx":
        _write_xlsx(path, details.get("sheet") or "Sheet1", columns, rows)
    elif kind == "jsonl":
        _replace(path, lambda tmp: Path(tmp).write_bytes(_utf8("".join(_json(row) + "\n" for row in rows))))
    elif kind == "json":
        _replace(path, lambda tmp: Path(tmp).write_bytes(_utf8("[\n" + ",\n".join(map(_json, rows)) + "\n]\n")))
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=DELIMITERS.get(details.get("delimiter"), ","), lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(row.get(c)) for c in columns] for row in rows])
        bom = "\ufeff" if details.get("encoding") != "utf-8" else ""  # Excel reads UTF-8 by its BOM
        _replace(path, lambda tmp: Path(tmp).write_bytes(_utf8(bom + buffer.getvalue())))


def _json(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


def _utf8(text: str) -> bytes:
    """UTF-8; a byte the input file could not decode (kept by the reader) becomes "?"."""
    return text.encode("utf-8", errors="replace")


def _replace(path: Path, write) -> None:
    """Call `write(temporary path)`, then move the result over `path` in one step."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cell(value) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


def _write_xlsx(path: Path, sheet: str, columns: list[str], rows: list[dict]) -> None:
    import openpyxl

    def clean(value) -> str:  # input cells may hold them too
        return printable(_utf8(_cell(value)).decode("utf-8"))

    book = openpyxl.Workbook(write_only=True)
    ws = book.create_sheet(sheet)
    ws.append(columns)
    for row in rows:
        ws.append([clean(row.get(c)) for c in columns])
    _replace(path, book.save)


def read_done(path: Path, columns: list[str], input_column: str, inputs: list[dict],
              sheet: str | None) -> list[dict]:
    """The rows an earlier fill of these inputs already wrote to `path` (for resume).

    Refuses a file that is not such a fill: other columns, or rows that differ from the inputs.
    """
    source = open_source(path, sheet)
    records = list(source.rows)
    done = [record.data or {} for record in records]
    found = source.columns or (list(done[0]) if done else columns)
    if found != columns:
        raise UserError(f"{path} does not look like a fill of these inputs (its columns: {', '.join(found)}; "
                        f"expected: {', '.join(columns)}). Choose another --out, or drop --resume.")
    for number, (record, row, given) in enumerate(zip(records, done, inputs), start=1):
        if _cell(row.get(input_column)).strip() != _cell(given.get(input_column)).strip():
            where = place(source.format, record.row, record.line).lower()
            raise UserError(f"{path}, {where} (example {number}), answers a different input than example "
                            f"{number} of the input file; it belongs to another file. Choose another --out.")
    if len(done) > len(inputs):
        raise UserError(f"{path} has more rows ({len(done)}) than the inputs ({len(inputs)}).")
    return done
