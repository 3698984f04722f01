"""The rows to answer: read with the data doctor's readers, the input column found or given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localsft.data.mapping import CHAT_NAMES, INPUT_NAMES, SYSTEM_NAMES, TEXT_NAMES, _find
from localsft.data.formats import open_source
from localsft.data.readers import Source, place
from localsft.errors import UserError


@dataclass
class InputRow:
    """One row of the file: its fields as read, and the chat to answer or why there is none."""

    line: int
    fields: dict
    messages: list[dict] | None = None
    note: str | None = None  # why the row is not answered (shown in the answer column)


@dataclass
class InputTable:
    """The whole input file: what kind it is, its columns in order, and its rows."""

    source: Source
    columns: list[str]
    input_column: str
    rows: list[InputRow]


def choose_input_column(columns: list[str], given: str | None) -> str:
    """The column holding the inputs: `given`, else one named like an input, else the only one."""
    if given is not None:
        if given not in columns:
            raise UserError(f"There is no column {given!r}; the columns are: {', '.join(columns)}.")
        return given
    found = _find(columns, CHAT_NAMES + INPUT_NAMES + TEXT_NAMES, set())
    if found:
        return found
    if len(columns) == 1:
        return columns[0]
    raise UserError(f"Cannot tell which column holds the inputs (columns: {', '.join(columns)}). "
                    "Choose it with --input-col.")


def _chat(value, where: str, column: str) -> tuple[list[dict] | None, str | None]:
    """A chat column's messages, without a trailing assistant turn (that is what we write)."""
    if not isinstance(value, list) or not all(isinstance(m, dict) and "content" in m for m in value):
        return None, f"{where}: column {column!r} is not a list of chat messages"
    messages = [{"role": m.get("role", "user"), "content": str(m["content"])} for m in value]
    while messages and messages[-1]["role"] == "assistant":
        messages.pop()
    return (messages, None) if messages else (None, f"{where}: no user message to answer")


def to_messages(fields: dict, where: str, column: str, system_column: str | None,
                system_prompt: str | None) -> tuple[list[dict] | None, str | None]:
    """The chat for one row (the run's system prompt unless the row has its own), or a note that
    begins with `where` (the row as messages name it: readers.place)."""
    value = fields.get(column)
    if isinstance(value, list):
        return _chat(value, where, column)
    if isinstance(value, dict):
        return None, f"{where}: column {column!r} holds an object, not text"
    text = "" if value is None else str(value).replace("\r\n", "\n").strip()
    if not text:
        return None, f"{where}: the input (column {column!r}) is empty"
    system = str(fields.get(system_column) or "").strip() if system_column else ""
    system = system or system_prompt or ""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}], None


def read_inputs(path: str | Path, input_column: str | None = None, sheet: str | None = None,
                system_prompt: str | None = None) -> InputTable:
    """Every row of the file, each with its chat or a note saying why it cannot be answered."""
    source = open_source(path, sheet)
    records = list(source.rows)
    columns = list(source.columns or [])
    for record in records:  # JSON(L) rows: the columns are the keys, in order of first appearance
        for key in record.data or {}:
            if key not in columns:
                columns.append(key)
    if not columns:
        raise UserError(f"{source.path} has no readable rows.")
    column = choose_input_column(columns, input_column)
    system_column = _find([c for c in columns if c != column], SYSTEM_NAMES, set())
    rows = []
    for record in records:
        where = place(source.format, record.row, record.line).lower()
        if record.problem:
            rows.append(InputRow(record.line, {}, note=f"{where}: {record.problem}"))
            continue
        messages, note = to_messages(record.data, where, column, system_column, system_prompt)
        rows.append(InputRow(record.line, record.data, messages, note))
    return InputTable(source, columns, column, rows)
