"""`localsft feedback RUN [--export FILE]`: the votes and corrections collected for a run."""

from __future__ import annotations


def run(args) -> int:
    from localsft.feedback import collect, export_pairs
    from localsft.runs.folder import RunFolder

    run_folder = RunFolder.open(args.run)
    collected = collect(run_folder)
    print(f"{run_folder.name}: {collected.describe()}")
    for pair in collected.pairs:
        prompt = pair.prompt[-1]["content"].replace("\n", " ")
        print(f"  [{pair.source}] {prompt[:60]}{'...' if len(prompt) > 60 else ''}")
        print(f"      better: {_short(pair.chosen)}")
        print(f"      worse:  {_short(pair.rejected)}")
    if args.export:
        n = export_pairs(run_folder, args.export)
        print(f"wrote {n} pairs to {args.export} (prompt/chosen/rejected JSONL)")
    elif collected.pairs:
        print(f"Train the next version with: localsft train --from {run_folder.path} --preferences")
    return 0


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def register(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="the run folder")
    parser.add_argument("--export", metavar="FILE", help="write the preference pairs as JSONL (TRL, mlx-lm-lora)")
    parser.set_defaults(func=run)
