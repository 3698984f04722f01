"""JSON files: an array of examples streamed item by item, or one object holding such an array.

A broken item is reported and the next one found; an item longer than MAX_LINE_CHARS, or
JSON nested deeper than Python's parser goes, is reported instead of read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from localsft.data.readers import MAX_LINE_CHARS, SAMPLE_BYTES, Record, Source, json_object, open_text
from localsft.errors import UserError

MAX_DOCUMENT_BYTES = 64 << 20  # a JSON file that is one object, not an array (read whole)


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


def _array_items(fh, line: int = 1) -> Iterator[Record]:
    """Items of a JSON array read chunk by chunk; a broken item is reported and skipped."""
    decoder = json.JSONDecoder()
    buf = fh.read(SAMPLE_BYTES)
    pos = buf.index("[") + 1
    line += buf.count("\n", 0, pos)
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
        except RecursionError:
            yield Record(line, problem="JSON nested too deeply to be an example; the rest of the file is skipped")
            return
        except json.JSONDecodeError as err:
            if len(buf) - pos > MAX_LINE_CHARS:  # one item may not grow the buffer without bound
                yield Record(line, problem=f"an item longer than {MAX_LINE_CHARS:,} characters; "
                                           "the rest of the file is skipped")
                return
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
            yield json_object(line, value)
        line += buf.count("\n", pos, end)
        pos = end


_SPACE = " \t\r\n"


def _json_document(path: Path, encoding: str) -> Source:
    """One JSON object: {"data": [...]} as some exporters write it (the list is streamed), or one example."""
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise UserError(f"{path} is one JSON object of {size / 2**20:.0f} MB; above {MAX_DOCUMENT_BYTES >> 20} MB, "
                        "save the examples as a JSON array or JSON Lines.")
    with open_text(path, encoding) as fh:
        text = fh.read().lstrip("\ufeff")
    try:
        lists, chat = _top_level(text, json.JSONDecoder())
        if len(lists) == 1 and not chat:
            start = lists[0]
            rows = _array_items(_TextReader(text, start), 1 + text.count("\n", 0, start))
            return Source(path, "json", rows, None, {"encoding": encoding})
        if len(text) > MAX_LINE_CHARS:
            raise UserError(f"{path} is one JSON object of {size / 2**20:.0f} MB with no list of examples in it.")
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON: line {err.lineno}, column {err.colno}: {err.msg}.") from None
    except RecursionError:
        raise UserError(f"{path} is not a file of examples: its JSON is nested too deeply.") from None
    return Source(path, "json", iter([json_object(1, value)]), None, {"encoding": encoding})


class _TextReader:
    """read(n) over a string from a position, without copying the rest of it (as StringIO would)."""

    def __init__(self, text: str, pos: int):
        self.text, self.pos = text, pos

    def read(self, n: int) -> str:
        chunk = self.text[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk


def _skip(text: str, pos: int, chars: str = _SPACE) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _top_level(text: str, decoder: json.JSONDecoder) -> tuple[list[int], bool]:
    """Where each top-level list of objects starts, and whether the object is one chat.

    Walks the object key by key; a list of objects is skipped item by item, so no more
    than one item is ever built (json.load would build them all: ~100 times the file).
    """
    pos = _skip(text, 0)
    if text[pos:pos + 1] != "{":
        return [], True
    lists, keys, pos = [], set(), pos + 1
    while True:
        pos = _skip(text, pos, _SPACE + ",")
        if pos >= len(text):
            raise json.JSONDecodeError("Expecting '}' (the object is not closed)", text, pos)
        if text[pos] == "}":
            return lists, bool(keys & {"messages", "conversations"})
        key, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, _skip(text, pos) + 1)  # past the colon
        keys.add(key)
        first = _skip(text, pos + 1)
        if text[pos:pos + 1] == "[" and text[first:first + 1] == "{":
            lists.append(pos)
            pos = first
            while text[pos:pos + 1] != "]":
                _, pos = decoder.raw_decode(text, pos)
                pos = _skip(text, pos, _SPACE + ",")
            pos += 1
        else:
            _, pos = decoder.raw_decode(text, pos)
