"""`export_run`: write a run's tuned model in one or all formats, each one checked before it lands.

Per format: write into a hidden `.partial` folder, load it back the way its users would
(in MLX), run the fuse check against the adapter-on-base model, add the model card,
then move it into place. A failing check raises ExportCheckFailed and nothing is
written (unless `force`, which writes it with the failure stated in its card).
"""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from localsft.errors import UserError
from localsft.export.card import model_card, usage
from localsft.export.check import CheckResult, compare, make_probes, probe_logits
from localsft.export.merge import Tuned, fuse, load_tuned
from localsft.runs.folder import RunFolder
from localsft.runs.names import display_name

FORMATS = ("adapter", "peft", "mlx", "hf", "gguf")  # adapter formats first: they need the unfused model
FUSED_FORMATS = ("mlx", "hf", "gguf")
QUANTIZABLE = {"mlx": (4, 8), "gguf": (8,)}
CHECK_FILE = "localsft-export.json"


class ExportCheckFailed(UserError):
    """The exported model does not behave like the tuned model (see the message for the figures)."""


@dataclass
class ExportResult:
    """One written export: where, its check figures, and how to use it."""

    fmt: str
    path: Path
    check: CheckResult
    usage: str = ""  # how to load it in the tools people use (markdown)
    files: list[str] = field(default_factory=list)


def _formats(fmt: str, bits: int | None) -> list[str]:
    """The formats to write, in FORMATS order: "all", one name, or names joined by commas."""
    chosen = FORMATS if fmt == "all" else [f.strip() for f in fmt.split(",")]
    for name in chosen:
        if name not in FORMATS:
            raise UserError(f"Unknown export format {name!r}: choose from {', '.join(FORMATS)} or all.")
    if bits and not any(bits in QUANTIZABLE.get(name, ()) for name in chosen):
        allowed = ", ".join(f"{f}: {' or '.join(map(str, b))}" for f, b in QUANTIZABLE.items())
        raise UserError(f"--quantize {bits} does not apply to the {fmt} format ({allowed}).")
    return [name for name in FORMATS if name in chosen]


def _out_dir(run: RunFolder, fmt: str, out: Path | None, several: bool) -> Path:
    if out is None:
        return run.exports_dir(fmt)
    return Path(out).expanduser() / fmt if several else Path(out).expanduser()


class _Reference:
    """The probes and the base / tuned logits every check compares against."""

    def __init__(self, run: RunFolder, tuned: Tuned):
        self.probes = make_probes(run.data_dir)
        self.ids = [p.ids(tuned.tokenizer) for p in self.probes]
        self.base = probe_logits(tuned.base, self.ids)
        self.tuned = probe_logits(tuned.model, self.ids)

    def check(self, fmt: str, model, tokenizer) -> CheckResult:
        tokens_match = [p.ids(tokenizer) for p in self.probes] == self.ids
        return compare(fmt, probe_logits(model, self.ids), self.tuned, self.base, tokens_match)


def _export_one(run: RunFolder, tuned: Tuned, ref: _Reference, fmt: str, out: Path,
                bits: int | None, force: bool) -> ExportResult:
    writer = importlib.import_module(f"localsft.export.{fmt}")
    bits = bits if bits in QUANTIZABLE.get(fmt, ()) else None
    if out.exists() and any(out.iterdir()) and not (out / CHECK_FILE).exists():
        raise UserError(f"{out} already holds files that are not a localsft export; choose a new or empty folder.")
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        writer.write(tuned, partial, bits)
        model, tokenizer = writer.reload(tuned, partial)
        check = ref.check(fmt, model, tokenizer)
        del model
        if not check.passed and not force:
            hint = (f"Export without --quantize {bits}" if bits else
                    "Please report this with the output of `localsft doctor`")
            raise ExportCheckFailed(f"The {fmt} export was not written: it does not behave like the tuned model "
                                    f"({check.summary()}). {hint}, or pass --force to write it anyway.")
        gguf_name = next((p.name for p in partial.glob("*.gguf")), "model.gguf")
        (partial / "README.md").write_text(model_card(run, tuned, fmt, out, check, gguf_name))
        (partial / CHECK_FILE).write_text(json.dumps(check.as_dict(), indent=2))
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    files = sorted(p.name for p in out.iterdir())
    return ExportResult(fmt, out, check, usage(fmt, out, tuned, gguf_name), files)


def export_run(run_dir: str | Path, fmt: str = "all", out: str | Path | None = None, quantize: int | None = None,
               dtype: str | None = None, force: bool = False,
               on_progress: Callable[[str], None] | None = None) -> list[ExportResult]:
    """Export the run's tuned model; returns one result per format written.

    fmt: one of FORMATS, several joined by commas, or "all".
    out: the folder (one subfolder per format when there are several; default RUN/exports/<format>);
        an earlier export there is replaced, any other non-empty folder is refused.
    quantize: 4 or 8 bits after merging (mlx; gguf takes 8 = q8_0).
    dtype: float type of the written weights (default: the base model's).
    force: write even when the fuse check fails.
    """
    say = on_progress or (lambda _msg: None)
    run = RunFolder.open(run_dir)
    formats = _formats(fmt, quantize)
    say(f"loading the base model and the adapter of run {run.name}")
    tuned = load_tuned(run, dtype)
    tuned.name = display_name(run.path)
    ref = _Reference(run, tuned)
    results, refused = [], []
    for name in formats:
        if name in FUSED_FORMATS:
            fuse(tuned)
        target = _out_dir(run, name, out, len(formats) > 1)
        say(f"writing {name} to {target}")
        try:
            results.append(_export_one(run, tuned, ref, name, target, quantize, force))
        except ExportCheckFailed as err:  # the other formats are still worth writing
            refused.append(str(err))
            say(str(err))
            continue
        say(f"{name}: {results[-1].check.summary()}")
    if refused:
        written = ", ".join(f"{r.fmt} ({r.path})" for r in results)
        raise ExportCheckFailed(" ".join(refused) + (f" Written: {written}." if written else ""))
    return results
