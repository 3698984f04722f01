"""The data doctor's entry points: `check` a file, `prepare` checked splits for training.

Rows are read, normalized, checked and tokenized one at a time; only the kept examples
(and a few numbers per example) stay in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

from localsft.data.checks import (Seen, check_length, clean_characters, long_outputs, prompt_and_answer,
                                  repeated_text, set_problems)
from localsft.data.mapping import ColumnMapping, RowError, detect_mapping, to_example
from localsft.data.readers import open_source
from localsft.data.report import DataReport, length_stats
from localsft.data.split import split_groups
from localsft.data.template import tokenize_example
from localsft.errors import UserError
from localsft.runs.folder import atomic_write_text

SPLITS = ("train", "valid", "test")


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


def _label(report: DataReport, line: int) -> str:
    return f"{'Row' if report.stats.get('format') == 'xlsx' else 'Line'} {line}"


def _read(report: DataReport, source, tokenizer, mapping, system_prompt, max_seq_len, mask_prompt):
    """Fill `report` from the rows of `source`; returns token lengths and trained tokens per example."""
    chosen, seen, lengths, trained = None, Seen(), [], []
    for record in source.rows:
        report.rows_read += 1
        where = _label(report, record.line)
        if record.problem:
            report.add(record.line, "error", f"{where}: {record.problem}.", code="unreadable")
            continue
        if chosen is None:
            chosen, note = detect_mapping(source.columns or list(record.data), mapping)
            report.stats["mapping"] = chosen.to_dict()
            if note:
                report.add(None, "warning", note, code="guessed columns")
        try:
            example = to_example(record.data, chosen, system_prompt)
            warnings = [(clean_characters(example), "control characters"),
                        (repeated_text(prompt_and_answer(example)[1]), "repeated text")]
            tokens = tokenize_example(tokenizer, example, mask_prompt) if tokenizer else None
            warnings.append((tokens and check_length(tokens, max_seq_len), "truncated"))
            warnings.append((seen.check(record.line, example), "conflicting output"))
        except (RowError, UserError) as err:  # UserError: the chat template refuses this chat
            message = str(err).rstrip(".")
            report.add(record.line, "error", f"{where}: {message}.", getattr(err, "column", None),
                       getattr(err, "code", "template"))
            continue
        for message, code in warnings:
            if message:
                report.add(record.line, "warning", f"{where}: {message}.", code=code)
        report.examples.append(example)
        report.lines.append(record.line)
        if tokens:
            lengths.append(len(tokens))
            trained.append(sum(tokens.loss_mask[:max_seq_len]))  # what survives truncation
    return lengths, trained


def _check(path, tokenizer, mapping, system_prompt, max_seq_len, sheet, mask_prompt, valid_fraction) -> DataReport:
    tokenizer = _tokenizer(tokenizer)
    source = open_source(path, sheet)
    report = DataReport(str(source.path))
    report.stats.update(format=source.format, **source.details, max_seq_len=max_seq_len, mask_prompt=mask_prompt)
    lengths, trained = _read(report, source, tokenizer, mapping, system_prompt, max_seq_len, mask_prompt)
    report.rows_kept = len(report.examples)
    if report.rows_read == 0:
        raise UserError(f"{report.path} has a header but no rows." if source.columns else f"{report.path} has no examples.")
    for severity, message in set_problems(report.rows_kept, valid_fraction):
        report.add(None, severity, message, code="size")
    long_lines = []
    for i, message in long_outputs(trained):
        long_lines.append(report.lines[i])
        report.add(report.lines[i], "warning", f"{_label(report, report.lines[i])}: {message}.", code="long output")
    report.stats["long_output_lines"] = long_lines  # prepare() keeps these rows out of valid and test
    odd = [f"{what}: {n}" for code, what in (("repeated text", "outputs that repeat one piece of text"),
                                            ("long output", "outputs far longer than the rest"))
           if (n := report.warned.get(code, 0))]
    if odd:  # said once for the whole set too, so "ready to train" never hides them
        report.add(None, "warning", f"Look at these before training ({'; '.join(odd)}; listed by line): "
                                    "the model learns from them like from any other example.", code="outputs")
    report.stats.update(dropped=dict(report.dropped), warnings=dict(report.warned),
                        tokens=length_stats(lengths, trained, max_seq_len) or None)
    report.trainable = not any(p.severity == "error" and p.line is None for p in report.problems)
    return report


def check(path, *, tokenizer=None, mapping: ColumnMapping | None = None, system_prompt: str | None = None,
          max_seq_len: int = 2048, sheet: str | None = None, mask_prompt: bool = True) -> DataReport:
    """Read and check an example file. `tokenizer` (object, or model name/folder) adds token checks.

    Raises UserError when the file cannot be read at all (missing, binary, empty, not a table).
    """
    return _check(path, tokenizer, mapping, system_prompt, max_seq_len, sheet, mask_prompt, 0.1)


def prepare(path, out_dir, *, tokenizer=None, mapping: ColumnMapping | None = None, system_prompt: str | None = None,
            max_seq_len: int = 2048, valid_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
            sheet: str | None = None, mask_prompt: bool = True) -> DataReport:
    """Check a file and write out_dir/{train,valid,test}.jsonl (normalized chat) and report.json.

    Deterministic for a seed; examples sharing an input never straddle splits. Raises
    DataError (a UserError carrying the report) when the set cannot be trained on; then
    only report.json is written.
    """
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise UserError("The validation and test fractions must each be between 0 and 1 and leave room to train.")
    report = _check(path, tokenizer, mapping, system_prompt, max_seq_len, sheet, mask_prompt, valid_fraction)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if report.trainable:
        seen = Seen()
        keys = [seen.group_key(e) for e in report.examples]
        long_lines = set(report.stats.get("long_output_lines") or [])
        outliers = {key for key, line in zip(keys, report.lines) if line in long_lines}
        splits = split_groups(keys, valid_fraction, test_fraction, seed, train_only=outliers)
        files = {name: open(out_dir / f"{name}.jsonl", "w", encoding="utf-8") for name in SPLITS}
        with files["train"], files["valid"], files["test"]:
            for example, name in zip(report.examples, splits):
                files[name].write(json.dumps(example, ensure_ascii=False) + "\n")
        report.stats["splits"] = {name: splits.count(name) for name in SPLITS}
        report.stats["seed"] = seed
    atomic_write_text(out_dir / "report.json", report.to_json())
    if not report.trainable:
        raise DataError(report)
    return report
