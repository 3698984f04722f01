"""Which reader opens an example file: chosen by its content first, then by its extension."""

from __future__ import annotations

import json
from pathlib import Path

from localsft.data.excel import read_xlsx
from localsft.data.jsonfile import read_json
from localsft.data.readers import (MAX_FILE_BYTES, SAMPLE_BYTES, Source, read_csv, read_jsonl,
                                   sniff_encoding)
from localsft.errors import UserError


def open_source(path: str | Path, sheet: str | None = None) -> Source:
    """Open an example file of any supported kind (chosen by content, then by extension)."""
    path = Path(path).expanduser()
    try:
        if not path.is_file():
            raise UserError(f"{path} does not exist." if not path.exists() else f"{path} is not a file.")
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(SAMPLE_BYTES)
    except OSError as err:
        raise UserError(f"{path} cannot be read: {err.strerror or err} (check the file's permissions).") from None
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path} is {size / 2**30:.1f} GB, over the limit of {MAX_FILE_BYTES >> 30} GB for one "
                        "file of examples; split it into several files.")
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
    except (json.JSONDecodeError, RecursionError):
        return False
