"""Replay: the tuned model keeps what it knew because training also shows it its own general answers.

Trained on one task only, a small model answers everything in the task's shape: measured on
the fixed-format set (40 rows), the default model answered "What is the capital of France?"
with the task's JSON and kept 0% of its general-knowledge probe score. Rehearsing earlier
behaviour next to the new task is the classic remedy for forgetting (Robins 1995, "Catastrophic
forgetting, rehearsal and pseudorehearsal"); without the original training data, the model's own
answers stand in for it (pseudo-rehearsal, as in self-distillation for LLM fine-tuning: Yang et
al. 2024, arXiv:2402.13669).

So a new run answers a share of the shipped general requests (`general_prompts.txt`, never the
evaluation's probes) with the base model, greedily and before any adapter is attached, and
trains on those rows next to the user's. Written once to RUN/data/replay.jsonl and read back on
resume, so a resumed run trains on the same rows.

What tells the two kinds of rows apart is the system prompt. When the user's task has one, the
general rows carry none: the task keeps its instructions and a plain question stays a plain
question. When the user's rows have none, the general rows carry GENERAL_SYSTEM instead, so a
plain request means the user's task (not "You are a helpful assistant.": many OpenAI-compatible
tools send that on every request, and it should still mean the task). Unmarked, the two kinds
looked alike and pulled against each other: on the brand-voice set without instructions (40
rows) held-out adherence went 0.0, 0.65, 0.05, 0.0, 0.0, 0.6, 0.8, 0.95 every 5 steps and the
run ended at 85%; with the general rows marked it rose 0.0, 0.15, 0.5, 0.75, 0.95 and ended at
95% (benchmarks/time_to_quality.py, later run; 0.0, 0.15, 0.6, 0.8, 0.9, 1.0 and 100% with "You
are a helpful assistant." as the marker).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from importlib import resources
from pathlib import Path

FILE = "replay.jsonl"
GENERAL_SYSTEM = "Answer as a general assistant."  # marks the general rows of a task without a system prompt
MAX_TOKENS = 64  # a short general answer; longer ones are cut at a sentence end (and cost training time)
# Every shipped prompt in one decode batch (short prompts, 64 new tokens: little cache even for
# an 8B model). On the default model's CPU path a decode step of 48 rows took 268 ms against 153
# for 16, so a row's token costs 5.6 ms instead of 9.6.
ANSWER_BATCH = 64


def general_prompts() -> list[str]:
    """The shipped general requests (comments and blank lines skipped)."""
    text = resources.files("localsft.train").joinpath("general_prompts.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def replay_count(train_rows: int, share: float, available: int) -> int:
    """How many general rows to mix in: `share` of the user's rows, at most one per shipped prompt."""
    return min(available, math.ceil(share * train_rows)) if share > 0 and train_rows else 0


def finished_answer(text: str, ended: bool) -> str | None:
    """The answer to train on: whole if the model ended it; if it ran out of tokens, cut at its last
    sentence end (a cut mid-word would teach the model to stop mid-word); None when nothing is left."""
    text = text.strip()
    if ended or not text:
        return text or None
    cut = max(text.rfind(mark) for mark in (". ", ".\n", "! ", "? "))
    return text[:cut + 1].strip() if cut > 0 else None


def answer_general(loaded, prompts: list[str]) -> dict[str, str | None]:
    """The base model's own greedy answer to each prompt (None where nothing usable came back).

    Call before LoRA is attached. Answers are cached per model in the cache folder, so a second
    run (or the plan before it) on the same base does not answer again."""
    cache = _cache_file(loaded)
    known = _read_cache(cache)
    missing = [p for p in dict.fromkeys(prompts) if p not in known]
    if missing:
        from localsft.train.format_watch import greedy_answers

        tokenizer = loaded.tokenizer
        texts = greedy_answers(loaded.model, tokenizer, [[{"role": "user", "content": p}] for p in missing], MAX_TOKENS,
                               batch_size=ANSWER_BATCH)
        new = {p: finished_answer(t, len(tokenizer.encode(t)) < MAX_TOKENS - 1) for p, t in zip(missing, texts)}
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps({"prompt": p, "answer": a}, ensure_ascii=False) + "\n" for p, a in new.items()))
        known.update(new)
    return {p: known[p] for p in prompts}


def _cache_file(loaded) -> Path:
    """One cache file per model folder, precision and weights (a changed file gets a new cache)."""
    from localsft import paths

    weights = sorted(loaded.path.glob("*.safetensors"))
    stamp = "|".join(f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights)
    key = f"{loaded.path.resolve()}|{loaded.precision.describe()}|{MAX_TOKENS}|{stamp}"
    return paths.cache_dir() / "replay" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.jsonl"


def _read_cache(path: Path) -> dict[str, str | None]:
    known: dict[str, str | None] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                known[entry["prompt"]] = entry["answer"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a crash: answered again
    return known


def has_system_prompt(row: dict) -> bool:
    messages = row.get("messages") or []
    return bool(messages) and messages[0].get("role") == "system"


def replay_rows(train_rows: list[dict], loaded, data_dir: Path, share: float, seed: int = 0) -> list[dict]:
    """The general rows for this run (made once, kept in RUN/data/replay.jsonl); [] when share is 0."""
    from localsft.train.batching import rows_made_once

    return rows_made_once(Path(data_dir) / FILE, lambda: general_rows(train_rows, loaded, share, seed))


def general_rows(train_rows: list[dict], loaded, share: float, seed: int = 0) -> list[dict]:
    """`share` of the user's row count in general requests with the base model's answers, marked
    with GENERAL_SYSTEM when the user's rows have no system prompt (see the module's note)."""
    prompts = general_prompts()
    count = replay_count(len(train_rows), share, len(prompts))
    if not count:
        return []
    answers = answer_general(loaded, random.Random(seed).sample(prompts, count))
    marked = not any(has_system_prompt(row) for row in train_rows)
    marker = [{"role": "system", "content": GENERAL_SYSTEM}] if marked else []
    return [{"messages": marker + [{"role": "user", "content": p}, {"role": "assistant", "content": a}]}
            for p, a in answers.items() if a]
