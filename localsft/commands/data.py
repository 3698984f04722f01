"""`localsft data check|prepare|preview`: check example files, write training splits, show trained tokens."""

from __future__ import annotations

import json
import sys

from localsft.data import ColumnMapping, DataError, check, format_report, prepare, preview
from localsft.data.readers import place
from localsft.errors import UserError
from localsft.train.config import default


def _options(args) -> dict:
    from localsft.models import load_tokenizer

    mapping = None
    if args.input_col or args.output_col or args.system_col:
        mapping = ColumnMapping(input=args.input_col, output=args.output_col, system=args.system_col)
    return {"tokenizer": load_tokenizer(args.model), "mapping": mapping, "system_prompt": args.system_prompt,
            "max_seq_len": args.max_seq_len, "sheet": args.sheet, "mask_prompt": not args.no_mask_prompt}


def _show(report, as_json: bool) -> int:
    print(report.to_json() if as_json else format_report(report))
    return 0 if report.trainable else 1


def _failed(args, err: UserError) -> int:
    """A file that cannot be read is one plain message (JSON too), exit code 1: not trainable."""
    if getattr(args, "json", False):
        print(json.dumps({"path": args.file, "rows_read": 0, "rows_kept": 0, "trainable": False,
                          "problems": [{"line": None, "column": None, "severity": "error", "message": str(err)}],
                          "stats": {}}, indent=2))
    else:
        print(f"error: {err}", file=sys.stderr)
    return 1


def run_check(args) -> int:
    try:
        report = check(args.file, **_options(args))
    except UserError as err:
        return _failed(args, err)
    return _show(report, args.json)


def run_prepare(args) -> int:
    try:
        report = prepare(args.file, args.out, valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
                         seed=args.seed, **_options(args))
    except DataError as err:
        return _show(err.report, args.json)
    except UserError as err:
        return _failed(args, err)
    code = _show(report, args.json)
    if not args.json:
        print(f"wrote {args.out}/train.jsonl, valid.jsonl, test.jsonl and report.json", file=sys.stderr)
    return code


def _marked(runs: list[tuple[str, bool]], color: bool) -> str:
    if color:
        return "".join(f"\033[1;32m{text}\033[0m" if trained else f"\033[2m{text}\033[0m" for text, trained in runs)
    return "".join(f"[[{text}]]" if trained else text for text, trained in runs)


def run_preview(args) -> int:
    options = _options(args)
    report = check(args.file, **options)
    if not report.examples:
        raise UserError(f"{args.file} has no usable examples to preview.")
    row = args.row or report.rows[0]
    if row not in report.rows:
        raise UserError(f"Row {row} of {args.file} is not a kept example (see `localsft data check`).")
    index = report.rows.index(row)
    where = place(report.stats["format"], row, report.lines[index]).lower()
    example = report.examples[index]
    color = sys.stdout.isatty()
    print(f"{where}: trained tokens " + ("in green" if color else "between [[ and ]]"), file=sys.stderr)
    print(_marked(preview(options["tokenizer"], example, options["mask_prompt"]), color))
    return 0


def _common(parser) -> None:
    parser.add_argument("file", help="CSV, TSV, Excel .xlsx, JSONL or JSON file of examples")
    parser.add_argument("--model", default=None, help="model whose tokenizer and chat template to use (default: the default model)")
    parser.add_argument("--input-col", help="column holding the inputs (default: detected from its name)")
    parser.add_argument("--output-col", help="column holding the outputs (default: detected from its name)")
    parser.add_argument("--system-col", help="column holding a per-row system prompt")
    parser.add_argument("--system-prompt", help="system prompt added to every example that has none")
    parser.add_argument("--sheet", help="Excel sheet name (default: the visible sheet whose columns hold examples, the active one first)")
    parser.add_argument("--max-seq-len", type=int, default=default("max_seq_len"),
                        help="longest example in tokens; longer ones are cut (default: training's, %(default)s)")
    parser.add_argument("--no-mask-prompt", action="store_true", help="train on prompt tokens too (default: outputs only)")


def register(parser) -> None:
    verbs = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check_p = verbs.add_parser("check", help="read and check a file; exit 0 if it can be trained on, else 1")
    _common(check_p)
    check_p.add_argument("--json", action="store_true", help="print the report as JSON")
    check_p.set_defaults(func=run_check)
    prep = verbs.add_parser("prepare", help="check a file and write train/valid/test JSONL + report.json")
    _common(prep)
    prep.add_argument("--out", required=True, help="folder for train.jsonl, valid.jsonl, test.jsonl, report.json")
    prep.add_argument("--valid-fraction", type=float, default=default("valid_fraction"))
    prep.add_argument("--test-fraction", type=float, default=default("test_fraction"))
    prep.add_argument("--seed", type=int, default=default("seed"))
    prep.add_argument("--json", action="store_true", help="print the report as JSON")
    prep.set_defaults(func=run_prepare)
    show = verbs.add_parser("preview", help="show the exact text one example trains on, trained tokens marked")
    _common(show)
    show.add_argument("--row", "--line", type=int, dest="row",
                      help="the example's row, as `data check` names it (default: the first)")
    show.set_defaults(func=run_preview)
