"""Time to quality: CPU seconds until held-out format adherence reaches 95%, ours (no flags) vs `mlx_lm lora`.

    .venv/bin/python benchmarks/time_to_quality.py --quick          # fixed-format at 40 rows only
    nice -n 10 .venv/bin/python benchmarks/time_to_quality.py       # 3 sets x (40, 200) rows
    .venv/bin/python benchmarks/time_to_quality.py --quick --only-ours --set replay=0   # try a change
    .venv/bin/python benchmarks/time_to_quality.py --only-ours --rows 40 --replay-cached  # a later run

For each shipped set with a format check and each training size, both trainers get the same
data (train.jsonl, an 8-row valid.jsonl, a 20-row held-out test.jsonl never trained on):
- ours: `localsft train --recipe SET --data DIR` and nothing else (the recipe sets only the
  task's system prompt and format check; steps, batch, learning rate, layers are sized), as a
  first run on the model: the replay answers, cached per model afterwards, are made and counted
  (`--replay-cached`: as a later run, they are made by a `--dry-run` before the timing);
- mlx_lm: `mlx_lm lora` with expert flags: every layer (num_layers -1, all linear keys by
  default), mask_prompt, batch 4, lr 1e-4 (scale 20), 60 iterations at 40 rows (6 epochs)
  and 100 at 200 (2 epochs), one validation, an adapter saved every ~1/6 of the run.
While a trainer runs, its process's CPU seconds (utime + stime from /proc) are read each time
it writes a checkpoint/adapter, and that snapshot is copied; afterwards each snapshot is scored
on the held-out prompts (greedy, fp32 base + snapshot) until one reaches 95% adherence.
The final adapter (ours: the one the run picked; mlx_lm: the last) gets adherence, chrF, the
check after training, and retention (all 70 general-knowledge probes, tuned / base: one probe
is about 2%; the 24 used before moved it 7% per probe).
Trained tokens/s and the share of the measured fp32 matmul peak (4 x params FLOPs per trained
token) are printed for ours. One JSON object on stdout; `--out FILE` also keeps it as it grows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx)
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from train_vs_mlx_lm import fp32_copy  # noqa: E402

SETS = ("fixed-format", "glossary", "brand-voice")  # classification.csv reads as plain text (no prompts)
SIZES = (40, 200)
HELD_OUT, VALID = 20, 8
TARGET = 0.95
TICKS = os.sysconf("SC_CLK_TCK")


def split_case(recipe, rows: int, out: Path, tokenizer) -> int:
    """train/valid/test.jsonl for one case (seeded); returns the number of training rows."""
    from localsft import data

    config = recipe.train_config()
    data.prepare(config.data, out / "all", tokenizer=tokenizer, system_prompt=config.system_prompt,
                 valid_fraction=0, test_fraction=0)
    lines = [line for line in (out / "all" / "train.jsonl").read_text().splitlines() if line.strip()]
    random.Random(0).shuffle(lines)
    test, valid, train = lines[:HELD_OUT], lines[HELD_OUT:HELD_OUT + VALID], lines[HELD_OUT + VALID:][:rows]
    for name, part in (("train", train), ("valid", valid), ("test", test)):
        (out / f"{name}.jsonl").write_text("\n".join(part) + "\n")
    return len(train)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def run_watched(cmd: list[str], env: dict, log: Path, snapshots, keep: Path) -> dict:
    """Run a trainer; each new snapshot file (from `snapshots()`) is copied with the CPU seconds so far."""
    keep.mkdir(parents=True, exist_ok=True)
    taken: list[dict] = []
    start = time.perf_counter()
    with open(log, "w") as fh:
        child = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        cpu = 0.0
        while True:
            done, status, usage = os.wait4(child.pid, os.WNOHANG)
            if done:
                break
            try:
                cpu = cpu_seconds(child.pid)
            except (OSError, IndexError):
                pass
            for step, path in snapshots():
                if step not in {t["step"] for t in taken}:
                    copy = keep / f"step-{step}.safetensors"
                    try:
                        shutil.copyfile(path, copy)
                    except OSError:  # pruned between listing and copying
                        continue
                    taken.append({"step": step, "cpu_s": round(cpu, 1),
                                  "wall_s": round(time.perf_counter() - start, 1), "file": str(copy)})
            time.sleep(0.5)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed; see {log}:\n{log.read_text()[-2000:]}")
    return {"cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "wall_s": round(time.perf_counter() - start, 1),
            "snapshots": sorted(taken, key=lambda t: t["step"])}


def ours(recipe: str, data: Path, out: Path, settings: list[str], replay_cached: bool = False) -> dict:
    from localsft import paths

    shutil.rmtree(out, ignore_errors=True)
    # a first run on this model: its replay answers (train/replay.py) are made, and counted, again
    shutil.rmtree(paths.cache_dir() / "replay", ignore_errors=True)
    base = [sys.executable, "-m", "localsft", "train", "--recipe", recipe, "--data", str(data)]
    base += [arg for setting in settings for arg in ("--set", setting)]
    if replay_cached:  # a later run on the same model: the plan (not timed) makes and caches them
        subprocess.run(base + ["--dry-run"], check=True, stdout=subprocess.DEVNULL)

    def snapshots():
        folder = out / "checkpoints"
        found = folder.glob("step-*/state.safetensors") if folder.exists() else []
        return [(int(p.parent.name.split("-")[1]), p) for p in found]

    result = run_watched(base + ["--out", str(out)], dict(os.environ), out.with_suffix(".log"), snapshots, out.with_suffix(".snaps"))
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    started = next(e for e in events if e["type"] == "started")
    result.update(steps=steps[-1]["step"], planned_steps=started["steps"], sizing=(started.get("sizing") or {}),
                  trained_tokens=steps[-1]["trained_tokens"], train_s=steps[-1]["elapsed_s"],
                  final=str(out / "adapters" / "best"), adapter_config=str(out / "adapters" / "best"),
                  ended=events[-1]["type"])
    return result


def mlx_lm(model: Path, data: Path, out: Path, rows: int) -> dict:
    iters = 60 if rows <= 50 else 100
    config = {"model": str(model), "train": True, "data": str(data), "fine_tune_type": "lora", "seed": 0,
              "num_layers": -1, "batch_size": 4, "iters": iters, "val_batches": -1, "learning_rate": 1e-4,
              "steps_per_report": 10, "steps_per_eval": iters, "save_every": max(1, iters // 6),
              "adapter_path": str(out), "max_seq_length": 1024, "mask_prompt": True,
              "lora_parameters": {"rank": 8, "scale": 20.0, "dropout": 0.0}}
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ)
    blas = localsft.platform.blas
    if blas.find_openblas() and "OpenBLAS" in blas.blas_in_use():
        env["LD_PRELOAD"] = blas.find_openblas()  # the same fast BLAS we get

    def snapshots():
        return [(int(p.name.split("_")[0]), p) for p in out.glob("0*_adapters.safetensors")]

    result = run_watched([sys.executable, "-m", "mlx_lm", "lora", "-c", str(out / "config.yaml")], env,
                         out.parent / f"{out.name}.log", snapshots, out.parent / f"{out.name}.snaps")
    result.update(steps=iters, final=str(out), adapter_config=str(out))
    return result


class Scorer:
    """Greedy answers of the fp32 base + an adapter on the held-out prompts, scored."""

    def __init__(self, model: Path, data: Path, format_check: dict):
        from localsft.evaluation.metrics import format_checker
        from localsft.train.format_watch import answer_budget

        self.model_dir = model
        rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines() if line.strip()]
        self.chats = [r["messages"][:-1] for r in rows]
        self.references = [r["messages"][-1]["content"] for r in rows]
        self.check = format_checker(format_check)
        base = self.load(None)
        self.budget = answer_budget(base.tokenizer, self.references)
        self.base_probes = self.probe_accuracy(base)

    def load(self, adapter_config_dir: str | None, weights: str | None = None):
        import mlx.core as mx
        from mlx_lm.tuner.utils import load_adapters

        from localsft.models.loading import load_model

        loaded = load_model(str(self.model_dir), precision="float32")
        if adapter_config_dir:
            with tempfile.TemporaryDirectory() as tmp:
                shutil.copyfile(Path(adapter_config_dir) / "adapter_config.json", Path(tmp) / "adapter_config.json")
                source = weights or str(Path(adapter_config_dir) / "adapters.safetensors")
                arrays = mx.load(source)  # a checkpoint's state holds param.* (weights) and opt.* (optimizer)
                clean = {k.removeprefix("param."): v for k, v in arrays.items() if not k.startswith("opt.")}
                mx.save_safetensors(str(Path(tmp) / "adapters.safetensors"), clean)
                load_adapters(loaded.model, tmp)
        loaded.model.eval()
        return loaded

    def answers(self, loaded) -> list[str]:
        from localsft.train.format_watch import greedy_answers

        return [a.strip() for a in greedy_answers(loaded.model, loaded.tokenizer, self.chats, self.budget)]

    def adherence(self, answers: list[str]) -> float:
        return round(sum(bool(self.check(a)) for a in answers) / len(answers), 3)

    def probe_accuracy(self, loaded) -> float:
        from localsft.evaluation.evaluate import load_probes
        from localsft.evaluation.metrics import probe_correct
        from localsft.train.format_watch import greedy_answers

        probes = load_probes()
        answers = greedy_answers(loaded.model, loaded.tokenizer,
                                 [[{"role": "user", "content": p["question"]}] for p in probes], 32)
        return sum(probe_correct(a, p["answers"]) for a, p in zip(answers, probes)) / len(probes)

    def time_to_target(self, run: dict) -> dict:
        """First snapshot reaching TARGET adherence (snapshots scored in order, stopping there)."""
        scored = []
        for snap in run["snapshots"]:
            adherence = self.adherence(self.answers(self.load(run["adapter_config"], snap["file"])))
            scored.append({"step": snap["step"], "cpu_s": snap["cpu_s"], "adherence": adherence})
            if adherence >= TARGET:
                return {"cpu_s_to_95": snap["cpu_s"], "step_to_95": snap["step"], "curve": scored}
        return {"cpu_s_to_95": None, "step_to_95": None, "curve": scored}

    def final(self, run: dict) -> dict:
        from localsft.evaluation.degenerate import judge
        from localsft.evaluation.metrics import chrf

        loaded = self.load(run["final"])
        answers = self.answers(loaded)
        lengths = [len(loaded.tokenizer.encode(a)) for a in answers]
        health = judge([c[-1]["content"] for c in self.chats], answers, self.references,
                       [n >= self.budget - 1 for n in lengths])
        tuned = self.probe_accuracy(loaded)
        return {"adherence": self.adherence(answers), "chrf": round(chrf(answers, self.references), 1),
                "degenerate": health.problems, "retention": round(tuned / self.base_probes, 3)
                if self.base_probes else None, "example": answers[0]}


def case(name: str, rows: int, work: Path, fp32: Path, params: int, peak_gflops: float, args) -> dict:
    from localsft.models.loading import load_model
    from localsft.train.recipes import load_recipe

    recipe = load_recipe(name)
    folder = work / f"{name}-{rows}"
    data = folder / "data"
    n_train = split_case(recipe, rows, data, load_model(str(fp32), precision="float32").tokenizer)
    runs = {"ours": ours(name, data, folder / "ours", args.set, args.replay_cached)}
    if not args.only_ours:
        runs["mlx_lm"] = mlx_lm(fp32, data, folder / "mlx", rows)
    scorer = Scorer(fp32, data, recipe.train_config().format_check)
    result = {"set": name, "train_rows": n_train, "held_out": len(scorer.chats),
              "base_probe_accuracy": round(scorer.base_probes, 3)}
    for side, run in runs.items():
        result[side] = {k: run[k] for k in ("cpu_s", "wall_s", "steps") if k in run}
        result[side].update(scorer.time_to_target(run), **scorer.final(run))
    o = runs["ours"]
    tps = o["trained_tokens"] / max(o["train_s"], 1e-9)
    result["ours"].update(planned_steps=o["planned_steps"], ended=o["ended"], sizing=o["sizing"].get("summary"),
                          trained_tokens_per_s=round(tps, 1),
                          share_of_fp32_peak=round(4 * params * tps / (peak_gflops * 1e9), 3))
    a, b = result["ours"]["cpu_s_to_95"], result.get("mlx_lm", {}).get("cpu_s_to_95")
    result["cpu_to_95_ratio"] = round(a / b, 2) if a and b else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fixed-format at 40 rows only")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--rows", default=",".join(map(str, SIZES)))
    parser.add_argument("--work", type=Path, default=None, help="keep runs here (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here after every case")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for our trainer (repeatable): to try a change against the default")
    parser.add_argument("--only-ours", action="store_true", help="skip mlx_lm (to iterate on ours)")
    parser.add_argument("--replay-cached", action="store_true",
                        help="ours as a later run on the model: replay answers made before the timing")
    args = parser.parse_args()
    from mlx.utils import tree_flatten

    from localsft.models import resolve_model
    from localsft.models.loading import load_model
    from localsft.platform.backend import matmul_gflops

    work = args.work or Path(tempfile.mkdtemp(prefix="ttq-"))
    fp32 = fp32_copy(resolve_model(None), work / "fp32-model")
    params = sum(v.size for _, v in tree_flatten(load_model(str(fp32), precision="float32").model.parameters()))
    peak = matmul_gflops("float32")
    sets = ["fixed-format"] if args.quick else args.sets.split(",")
    sizes = [40] if args.quick else [int(r) for r in args.rows.split(",")]
    report = {"peak_fp32_gflops": round(peak, 1), "params": params, "load_avg_start": os.getloadavg(),
              "cases": []}
    for rows in sizes:  # every set at the small size first: the case the issue is about
        for name in sets:
            report["cases"].append(case(name, rows, work, fp32, params, peak, args))
            report["load_avg_now"] = os.getloadavg()
            if args.out:
                args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
