"""Answer every row of an input file and write the filled file as rows finish."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localsft.errors import UserError
from localsft.fill.inputs import InputRow, InputTable, read_inputs
from localsft.fill.output import added_columns, default_output, printable, read_done, write_table
from localsft.inference.generate import SamplingSettings


@dataclass
class FillOptions:
    """How to fill: which column, where to write, sampling, and whether to add the base answer."""

    input_column: str | None = None
    out: Path | None = None
    with_base: bool = False
    settings: SamplingSettings | None = None
    resume: bool = False
    sheet: str | None = None
    batch_size: int = 16  # input rows decoded together (twice as many batch rows with the base)
    limit: int | None = None  # answer only the first N rows (a preview)


@dataclass
class FillProgress:
    """Reported after every batch: rows written so far (of all), speed, time left, the file."""

    done: int
    total: int
    rows_per_s: float
    seconds_left: float | None
    out: Path
    started_at: int  # rows already in the file when this fill started (resume)


class Answerer:
    """One copy of the base weights; rows answered by the tuned model and/or the base."""

    def __init__(self, target) -> None:
        from localsft.inference.switch import AdapterBank
        from localsft.models.loading import load_model

        self.target = target
        self.bank = AdapterBank(load_model(str(target.base)))
        self.slot = self.bank.add(target.adapter) if target.adapter else 0

    def answer(self, chats: list[list[dict]], settings: SamplingSettings, with_base: bool) -> list[list[str]]:
        """Per chat: [answer] or [answer, base answer], every row decoded in one batch run."""
        from localsft.inference.batch import answer_all
        from localsft.inference.generate import chat_prompt

        loaded = self.bank.loaded
        prompts = [chat_prompt(loaded.tokenizer, chat) for chat in chats]
        slots = [self.slot] * len(prompts) + ([0] * len(prompts) if with_base else [])
        texts = answer_all(loaded.model, loaded.tokenizer, prompts * (2 if with_base else 1), settings,
                           self.bank.switch, batch_size=len(slots), adapter_slots=slots)
        n = len(prompts)
        return [[texts[i]] + ([texts[n + i]] if with_base else []) for i in range(n)]

    def too_long(self, chat: list[dict], settings: SamplingSettings) -> str | None:
        """A note when the prompt and the answer do not fit the model's context."""
        from localsft.inference.generate import chat_prompt

        length, context = len(chat_prompt(self.bank.loaded.tokenizer, chat)), self.target.context_length
        if length + settings.max_tokens > context:
            return (f"the input is {length} tokens; with up to {settings.max_tokens} answer tokens that is more "
                    f"than the model's context of {context}")
        return None


def check_settings(settings: SamplingSettings) -> None:
    """A plain UserError for sampling settings no model can use."""
    if settings.max_tokens < 1:
        raise UserError(f"max tokens must be at least 1 (got {settings.max_tokens}).")
    if settings.temperature < 0:
        raise UserError(f"temperature must be 0 (greedy) or more (got {settings.temperature}).")
    if not 0 < settings.top_p <= 1:
        raise UserError(f"top-p must be more than 0 and at most 1 (got {settings.top_p}).")


def _note(text: str) -> str:
    return f"(not answered: {text})"


def _filled(row: InputRow, answers: list[str] | None, note: str | None, names: list[str], check) -> dict:
    """The output row: the original fields, then the answer (+ base answer) (+ format ok)."""
    values = dict(row.fields)
    if note is not None:
        values.update({name: "" for name in names})
        values[names[0]] = _note(note)
        return values
    for name, text in zip(names, answers):
        values[name] = printable(text).strip()
    if check is not None:
        values[names[-1]] = "yes" if check(answers[0]) else "no"
    return values


def fill_file(target_name: str, data: str | Path, options: FillOptions | None = None,
              on_progress: Callable[[FillProgress], None] | None = None) -> Path:
    """Answer every row of `data` with the run (or base model) `target_name`; returns the file written."""
    from localsft.evaluation.metrics import format_checker
    from localsft.inference.targets import resolve_target

    options = options or FillOptions()
    settings = options.settings or SamplingSettings()
    check_settings(settings)
    if options.batch_size < 1:
        raise UserError("The batch size must be at least 1.")
    target = resolve_target(target_name)
    if options.with_base and target.adapter is None:
        raise UserError(f"{target.id} is a base model: --with-base needs a run (its tuned model next to the base).")
    run_config = target.run.config_dict() if target.run else {}
    check = format_checker(run_config.get("format_check"))
    table = read_inputs(data, options.input_column, options.sheet, target.instructions)
    names = added_columns(table.columns, options.with_base, check is not None)
    columns = table.columns + names
    out = Path(options.out).expanduser() if options.out else default_output(table.source.path)
    written = _start(out, options, columns, table)
    rows = table.rows[:options.limit] if options.limit else table.rows
    answerer = Answerer(target)
    started, first = time.monotonic(), len(written)
    for start in range(first, len(rows), options.batch_size):
        chunk = rows[start:start + options.batch_size]
        notes = [row.note or answerer.too_long(row.messages, settings) for row in chunk]
        todo = [row.messages for row, note in zip(chunk, notes) if note is None]
        answers = iter(answerer.answer(todo, settings, options.with_base) if todo else [])
        written += [_filled(row, None if note else next(answers), note, names, check)
                    for row, note in zip(chunk, notes)]
        write_table(out, table.source.format, table.source.details, columns, written)
        if on_progress:
            on_progress(_progress(len(written), len(rows), first, started, out))
    if first >= len(rows):  # nothing left to answer: still leave a complete file
        write_table(out, table.source.format, table.source.details, columns, written)
    return out


def _start(out: Path, options: FillOptions, columns: list[str], table: InputTable) -> list[dict]:
    """Rows already answered (resume), after checking that `out` may be written."""
    if out.resolve() == table.source.path.resolve():
        raise UserError(f"--out {out} is the input file itself; choose another file.")
    if not out.exists():
        return []
    if not options.resume:
        raise UserError(f"{out} already exists. Add --resume to continue filling it, or choose another --out.")
    return read_done(out, columns, table.input_column, [row.fields for row in table.rows], None)


def _progress(done: int, total: int, first: int, started: float, out: Path) -> FillProgress:
    elapsed = max(time.monotonic() - started, 1e-9)
    rate = (done - first) / elapsed
    left = (total - done) / rate if rate > 0 else None
    return FillProgress(done, total, rate, left, out, first)
