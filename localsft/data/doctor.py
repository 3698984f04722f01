"""The data doctor's entry points: `check` a file, `prepare` checked splits for training.

Rows are read, normalized, checked and tokenized one at a time; only the kept examples
(and a few numbers per example) stay in memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from localsft.data.checks import (Seen, check_length, clean_characters, long_outputs, prompt_and_answer,
                                  repeated_text, set_problems)
from localsft.data.formats import open_source
from localsft.data.mapping import ColumnMapping, RowError, detect_mapping, shown, to_example
from localsft.data.readers import MAX_ROWS, place
from localsft.data.report import DataReport, length_stats
from localsft.data.split import split_groups
from localsft.data.template import tokenize_example
from localsft.errors import UserError
from localsft.manifest import Manifest, writable_folder
from localsft.runs.folder import atomic_write_text
from localsft.train.config import default

SPLITS = ("train", "valid", "test")
OUTPUTS = tuple(f"{name}.jsonl" for name in SPLITS) + ("report.json",)


class DataError(UserError):
    """The file was read but cannot be trained on; `report` says why."""

    def __init__(self, report: DataReport):
        errors = [p.message for p in report.problems if p.severity == "error" and p.line is None]
        super().__init__(f"{report.path} cannot be trained on: {' '.join(errors) or 'no usable examples.'}")
        self.report = report


def _tokenizer(tokenizer):
    if isinstance(tokenizer, (str, Path)):
        from localsft.models import load_tokenizer

        return load_tokenizer(str(tokenizer))
    return tokenizer


def _label(report: DataReport, row: int, line: int) -> str:
    return place(report.stats.get("format", ""), row, line)


class _Mappings:
    """The column mapping of each row. Rows of JSON files may change shape halfway (other keys):
    each new shape gets its own mapping, said once in the report, instead of every row failing."""

    def __init__(self, report: DataReport, source, override: ColumnMapping | None):
        self.report, self.fixed, self.override = report, source.columns, override
        self.by_keys: dict[frozenset, ColumnMapping] = {}
        self.said: set[tuple] = set()  # the shapes the report has named

    def __call__(self, record) -> ColumnMapping:
        keys = frozenset(self.fixed or record.data)
        if keys in self.by_keys:
            return self.by_keys[keys]
        first = not self.by_keys
        if first:
            chosen, note = detect_mapping(self.fixed or list(record.data), self.override)
        elif self.override:
            chosen, note = self.override, None
        else:
            try:
                chosen, note = detect_mapping(list(record.data))
            except UserError:  # not a shape of its own: the first rows' mapping says what is missing
                return next(iter(self.by_keys.values()))
        if first:
            self.report.stats["mapping"] = chosen.to_dict()
            self.said.add(_parts(chosen))
        elif _parts(chosen) not in self.said and len(self.said) < 5:  # said once per shape, for a few shapes
            self.said.add(_parts(chosen))
            self.report.add(None, "warning", f"{_label(self.report, record.row, record.line)}: the rows change shape here; "
                            f"from here on some are read with {_describe(chosen)}.", code="shape change")
        if note and first:
            self.report.add(None, "warning", note, code="guessed columns")
        self.by_keys[keys] = chosen
        return chosen


def _parts(mapping: ColumnMapping) -> tuple:
    return mapping.input, mapping.output, mapping.chat, mapping.text


def _describe(mapping: ColumnMapping) -> str:
    return ", ".join(f"{k} {shown(v)}" for k, v in mapping.to_dict().items())


def _read(report: DataReport, source, mapping, system_prompt) -> None:
    """Fill `report` with the examples of `source` that pass the row checks (no tokenizer needed)."""
    mappings, seen = _Mappings(report, source, mapping), Seen()
    for record in source.rows:
        if report.rows_read == MAX_ROWS:  # kept examples stay in memory: a file may not hold millions
            report.add(None, "error", f"More than {MAX_ROWS:,} rows: only the first {MAX_ROWS:,} were checked. "
                                      "Split the file, or sample the rows you want to train on.", code="size")
            break
        report.rows_read += 1
        where = _label(report, record.row, record.line)
        if record.problem:
            report.add(record.line, "error", f"{where}: {record.problem}.", code="unreadable", row=record.row)
            continue
        try:
            example = to_example(record.data, mappings(record), system_prompt)
            warnings = [(clean_characters(example), "control characters"),
                        (repeated_text(prompt_and_answer(example)[1]), "repeated text"),
                        (seen.check(where.lower(), example), "conflicting output")]
        except RowError as err:
            report.add(record.line, "error", f"{where}: {str(err).rstrip('.')}.", err.column, err.code, record.row)
            continue
        for message, code in warnings:
            if message:
                report.add(record.line, "warning", f"{where}: {message}.", code=code, row=record.row)
        report.examples.append(example)
        report.lines.append(record.line)
        report.rows.append(record.row)


def _tokenize(report: DataReport, tokenizer, max_seq_len: int, mask_prompt: bool) -> tuple[list[int], list[int]]:
    """Token checks on the kept examples (drops those no answer token of which fits); token counts."""
    examples, lines, rows, lengths, trained = [], [], [], [], []
    for example, line, row in zip(report.examples, report.lines, report.rows):
        where = _label(report, row, line)
        try:
            tokens = tokenize_example(tokenizer, example, mask_prompt)
            warning = check_length(tokens, max_seq_len)
        except (RowError, UserError) as err:  # UserError: the chat template refuses this chat
            report.add(line, "error", f"{where}: {str(err).rstrip('.')}.", getattr(err, "column", None),
                       getattr(err, "code", "template"), row)
            continue
        if warning:
            report.add(line, "warning", f"{where}: {warning}.", code="truncated", row=row)
        examples.append(example)
        lines.append(line)
        rows.append(row)
        lengths.append(len(tokens))
        trained.append(sum(tokens.loss_mask[:max_seq_len]))  # what survives truncation
    report.examples, report.lines, report.rows = examples, lines, rows
    return lengths, trained


def read_examples(path, *, mapping: ColumnMapping | None = None, system_prompt: str | None = None,
                  sheet: str | None = None, max_seq_len: int = default("max_seq_len"), mask_prompt: bool = True) -> DataReport:
    """The first half of `check`: read the file and run the row checks; no tokenizer, no verdict yet.

    The half that reads untrusted bytes (see isolated.py); `finish_check` does the rest.
    """
    source = open_source(path, sheet)
    report = DataReport(str(source.path))
    report.stats.update(format=source.format, **source.details, max_seq_len=max_seq_len, mask_prompt=mask_prompt)
    if source.columns:
        report.stats["columns"] = source.columns
    for note in source.notes:
        report.add(None, "warning", note, code="reader")
    _read(report, source, mapping, system_prompt)
    if report.rows_read == 0:
        raise UserError(f"{report.path} has a header but no rows." if source.columns else f"{report.path} has no examples.")
    return report


def finish_check(report: DataReport, tokenizer=None, valid_fraction: float = 0.1) -> DataReport:
    """The second half of `check`: token checks (with a tokenizer), size checks, statistics, verdict."""
    lengths, trained = [], []
    if tokenizer is not None:
        s = report.stats
        lengths, trained = _tokenize(report, _tokenizer(tokenizer), s["max_seq_len"], s["mask_prompt"])
    report.rows_kept = len(report.examples)
    for severity, message in set_problems(report.rows_kept, valid_fraction):
        report.add(None, severity, message, code="size")
    long_lines = []
    for i, message in long_outputs(trained):
        line, row = report.lines[i], report.rows[i]
        long_lines.append(line)
        report.add(line, "warning", f"{_label(report, row, line)}: {message}.", code="long output", row=row)
    report.stats["long_output_lines"] = long_lines  # prepare() keeps these rows out of valid and test
    odd = [f"{what}: {n}" for code, what in (("repeated text", "outputs that repeat one piece of text"),
                                            ("long output", "outputs far longer than the rest"))
           if (n := report.warned.get(code, 0))]
    if odd:  # said once for the whole set too, so "ready to train" never hides them
        report.add(None, "warning", f"Look at these before training ({'; '.join(odd)}; listed by row): "
                                    "the model learns from them like from any other example.", code="outputs")
    report.stats.update(dropped=dict(report.dropped), warnings=dict(report.warned),
                        tokens=length_stats(lengths, trained, report.stats["max_seq_len"]) or None)
    report.trainable = not any(p.severity == "error" and p.line is None for p in report.problems)
    return report


def _check(path, tokenizer, mapping, system_prompt, max_seq_len, sheet, mask_prompt, valid_fraction) -> DataReport:
    tokenizer = _tokenizer(tokenizer)
    report = read_examples(path, mapping=mapping, system_prompt=system_prompt, sheet=sheet,
                           max_seq_len=max_seq_len, mask_prompt=mask_prompt)
    return finish_check(report, tokenizer, valid_fraction)


def check(path, *, tokenizer=None, mapping: ColumnMapping | None = None, system_prompt: str | None = None,
          max_seq_len: int = default("max_seq_len"), sheet: str | None = None,
          mask_prompt: bool = default("mask_prompt")) -> DataReport:
    """Read and check an example file. `tokenizer` (object, or model name/folder) adds token checks.

    Raises UserError when the file cannot be read at all (missing, binary, empty, not a table).
    """
    return _check(path, tokenizer, mapping, system_prompt, max_seq_len, sheet, mask_prompt, 0.1)


def prepare(path, out_dir, *, tokenizer=None, mapping: ColumnMapping | None = None, system_prompt: str | None = None,
            max_seq_len: int = default("max_seq_len"), valid_fraction: float = default("valid_fraction"),
            test_fraction: float = default("test_fraction"), seed: int = default("seed"),
            sheet: str | None = None, mask_prompt: bool = default("mask_prompt")) -> DataReport:
    """Check a file and write out_dir/{train,valid,test}.jsonl (normalized chat) and report.json.

    Deterministic for a seed; examples sharing an input never straddle splits. Raises
    DataError (a UserError carrying the report) when the set cannot be trained on; then
    only report.json is written, and splits an earlier `prepare` wrote there are removed.
    Files in out_dir that localsft did not write are never overwritten (UserError).
    """
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise UserError("The validation and test fractions must each be between 0 and 1 and leave room to train.")
    out_dir = writable_folder(Path(out_dir), "the prepared splits")
    manifest = Manifest(out_dir, legacy=OUTPUTS if _is_report(out_dir / "report.json") else ())
    manifest.refuse_foreign(OUTPUTS)
    try:
        report = _check(path, tokenizer, mapping, system_prompt, max_seq_len, sheet, mask_prompt, valid_fraction)
    except UserError:
        manifest.remove_ours()  # a later training must not find the splits of an earlier file
        raise
    try:
        _write(report, out_dir, manifest, valid_fraction, test_fraction, seed)
    except OSError as err:
        raise UserError(f"Cannot write the splits to {out_dir}: {err.strerror or err}.") from None
    if not report.trainable:
        raise DataError(report)
    return report


def _is_report(path: Path) -> bool:
    try:
        return {"rows_kept", "stats"} <= set(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return False


def _write(report: DataReport, out_dir: Path, manifest: Manifest, valid_fraction: float, test_fraction: float,
           seed: int) -> None:
    """Write the splits next to their final names, then move them in; a set that cannot be trained on
    leaves only report.json (the splits of an earlier run of `prepare` are removed)."""
    names = []
    if report.trainable:
        seen = Seen()
        keys = [seen.group_key(e) for e in report.examples]
        long_lines = set(report.stats.get("long_output_lines") or [])
        outliers = {key for key, line in zip(keys, report.lines) if line in long_lines}  # kept out of held-out splits
        splits = split_groups(keys, valid_fraction, test_fraction, seed, train_only=outliers)
        files = {name: open(out_dir / f".{name}.jsonl.partial", "w", encoding="utf-8") for name in SPLITS}
        with files["train"], files["valid"], files["test"]:
            for example, name in zip(report.examples, splits):
                files[name].write(json.dumps(example, ensure_ascii=False) + "\n")
        report.stats["splits"] = {name: splits.count(name) for name in SPLITS}
        report.stats["seed"] = seed
        for name in SPLITS:
            os.replace(out_dir / f".{name}.jsonl.partial", out_dir / f"{name}.jsonl")
            names.append(f"{name}.jsonl")
    else:
        manifest.remove_ours()
    atomic_write_text(out_dir / "report.json", report.to_json())
    manifest.record(names + ["report.json"])
