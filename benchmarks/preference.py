"""Learning from judgements, measured: a preference run (DPO) on top of a tuned run.

    .venv/bin/python benchmarks/preference.py            # SFT parent on 60 glossary rows, 40 pairs
    .venv/bin/python benchmarks/preference.py --parent RUN_DIR

The preference is one that the parent's training data never states: among otherwise equal
answers (the parent's own greedy glossary entries), the chosen one ends with a sign-off line
and the rejected one does not. Prints one JSON object with, for parent and new run on the
held-out pairs' prompts: share of answers ending with the sign-off, format adherence (the
glossary format, sign-off line set aside), general-knowledge retention (probe questions, new
over parent); held-out preference accuracy; and, for the preference run and a supervised run on
the same answers (rows per micro-batch and steps; one copy of the base weights in both), wall and
CPU seconds, peak MLX memory and peak RSS, each run alone in a fresh child process.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx: imported after mlx, every matmul ran ~30x slower)

import mlx.core as mx

from localsft.evaluation import metrics
from localsft.evaluation.evaluate import SideScores, run_probes
from localsft.feedback.judgements import PreferencePair
from localsft.inference.generate import SamplingSettings
from localsft.inference.side_by_side import answer_many
from localsft.inference.switch import load_switchable
from localsft.runs.folder import RunFolder
from localsft.train.config import TrainConfig
from localsft.train.loop import train
from localsft.train.preference import preference_config, split_pairs, train_preferences

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "Write the glossary entry for this term."
SIGN_OFF = "— The Acme glossary team"
MB = 1024 * 1024


def glossary_rows() -> tuple[list[dict], dict]:
    rows = list(csv.DictReader(open(ROOT / "recipes" / "data" / "glossary.csv", encoding="utf-8")))
    random.Random(0).shuffle(rows)
    recipe = (ROOT / "recipes" / "glossary.yaml").read_text()
    import yaml

    return rows, yaml.safe_load(recipe)["format_check"]


def train_parent(out: Path, rows: list[dict], check: dict) -> Path:
    data = out / "parent.csv"
    with open(data, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["term", "entry"])
        writer.writeheader()
        writer.writerows(rows)
    config = TrainConfig(data=str(data), system_prompt=SYSTEM, iters=30, batch_tokens=512, learning_rate=3e-4,
                         lora_alpha=16.0,
                         lora_layers=8, format_check=check, test_fraction=0.0, early_stopping_patience=0,
                         sample_prompts=0)
    train(config, run_dir=out / "parent")
    return out / "parent"


def conversation(term: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": term}]


def answers_of(run: Path, prompts: list[list[dict]], max_tokens: int = 96) -> tuple[list[str], object]:
    switchable = load_switchable(run)
    return answer_many(switchable, prompts, "tuned", SamplingSettings(max_tokens=max_tokens)), switchable


def without_sign_off(answer: str) -> str:
    return answer.strip().removesuffix(SIGN_OFF).strip()


def _measured(fn, args, results) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    results.put((result, {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1),
                          "peak_mlx_mb": round(mx.get_peak_memory() / MB),
                          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def alone(fn, *args) -> tuple[object, dict]:
    """(fn(*args), its wall and CPU seconds, peak MLX and RSS MB), run in a fresh child process so
    that each side's peak is its own (a process's peak RSS never goes down)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_measured, args=(fn, args, results))
    child.start()
    result = results.get()
    child.join()
    return result


def preference_run(config: TrainConfig, pairs: list[PreferencePair], run_dir: Path) -> tuple[str, int]:
    result = train_preferences(config, pairs, run_dir=run_dir)
    return result.status, result.step


def sft_same_data(out: Path, config: TrainConfig, pairs: list[PreferencePair], steps: int) -> Path:
    """A supervised run on the chosen answers: same rows per micro-batch (2 per pair), same steps."""
    data = out / "sft-data"
    data.mkdir(parents=True, exist_ok=True)
    rows = [json.dumps({"messages": p.prompt + [{"role": "assistant", "content": p.chosen}]}) for p in pairs]
    (data / "train.jsonl").write_text("\n".join(rows) + "\n")
    sft = config.replace(preference_loss=None, parent_run=None, data=str(data), iters=steps,
                         batch_size=2 * (config.batch_size or 4), packing=False, valid_fraction=0.0,
                         early_stopping_patience=0, sample_prompts=0)
    train(sft, run_dir=out / "sft")
    return out / "sft"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", help="a tuned glossary run to start from (default: train one)")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="localsft-pref-"))
    os.environ.setdefault("LOCALSFT_HOME", str(out / "home"))
    rows, check_spec = glossary_rows()
    started = time.perf_counter(), time.process_time()
    parent = Path(args.parent) if args.parent else train_parent(out, rows[:60], check_spec)
    parent_seconds = time.process_time() - started[1]
    terms = [r["term"] for r in rows[60:60 + args.pairs]]
    prompts = [conversation(t) for t in terms]
    bodies, _ = answers_of(parent, prompts)
    pairs = [PreferencePair(p, b.strip() + "\n\n" + SIGN_OFF, b.strip(), "vote", f"p{i}")
             for i, (p, b) in enumerate(zip(prompts, bodies))]
    config = preference_config(RunFolder(parent), overrides=["sample_prompts=0"])
    (status, steps), preference = alone(preference_run, config, pairs, out / "new")
    _, sft = alone(sft_same_data, out, config, split_pairs(pairs, config)[0], steps)
    held = split_pairs(pairs, config)[1]
    held_prompts = [p.prompt for p in held]
    check = metrics.format_checker(check_spec)
    figures = {}
    for name, run in (("parent", parent), ("new", out / "new")):
        answers, switchable = answers_of(run, held_prompts)
        scores = {"base": SideScores(), "tuned": SideScores()}
        run_probes(switchable, scores, lambda e: None, args.probes)
        figures[name] = {"sign_off_share": sum(a.strip().endswith(SIGN_OFF) for a in answers) / len(answers),
                         "format_adherence": sum(check(without_sign_off(a)) for a in answers) / len(answers),
                         "probe_accuracy": scores["tuned"].probe_accuracy, "example": answers[0]}
    accuracies = [e["preference_accuracy"] for e in RunFolder(out / "new").events()
                  if e.get("preference_accuracy") is not None]
    print(json.dumps({
        "pairs": len(pairs), "held_out_pairs": len(held), "steps": steps, "status": status,
        "held_out_preference_accuracy": {"before": accuracies[0], "best": max(accuracies)},
        "parent": figures["parent"], "new": figures["new"],
        "retention": (figures["new"]["probe_accuracy"] / figures["parent"]["probe_accuracy"]
                      if figures["parent"]["probe_accuracy"] else None),
        "preference_run": preference, "sft_same_data": sft,
        "peak_mem_ratio": round(preference["peak_mlx_mb"] / sft["peak_mlx_mb"], 3),
        "peak_rss_ratio": round(preference["peak_rss_mb"] / sft["peak_rss_mb"], 3),
        "parent_cpu_s": round(parent_seconds, 1) if not args.parent else None,
        "load_average": os.getloadavg(),
    }, indent=2, ensure_ascii=False))
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
