"""Held-out evaluation of a run: is the tuned model better, and did it forget anything?

`evaluate_run(run)` answers every held-out example with the base and the tuned model
(greedy, so the report is deterministic), scores both, checks general knowledge on the
shipped probe set, and writes RUN/eval.json and RUN/eval.md.

    Metrics per side: validation loss and perplexity (assistant tokens only, as trained),
    exact match, chrF, format adherence (when the recipe defines `format_check`),
    probe accuracy; `retention` = tuned probe accuracy / base probe accuracy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from localsft.evaluation import metrics
from localsft.evaluation.report import EvalReport, SideScores, render_markdown
from localsft.inference.switch import SwitchableModel, load_switchable
from localsft.inference.side_by_side import SIDES, answer_many
from localsft.errors import UserError
from localsft.inference.generate import SamplingSettings
from localsft.runs.folder import RunFolder, atomic_write_text

PROBE_MAX_TOKENS = 32  # facts come first; longer answers only cost time
LOSS_TOKENS_PER_BATCH = 2048  # bounds the (tokens x vocabulary) logits held at once


@dataclass
class EvalProgress:
    """Event: `done` of `total` items finished in `stage` ("loss", "answers", "probes")."""

    stage: str
    side: str  # "base", "tuned" or "both"
    done: int
    total: int


def read_examples(path: Path) -> list[dict]:
    """Chat examples ({"messages": [...]}) or text examples ({"text": ...}) from a JSONL file."""
    if not Path(path).exists():
        raise UserError(f"No evaluation data at {path}.")
    examples = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}, line {number}: not valid JSON ({err.msg}).") from None
        if not isinstance(example, dict) or not ({"messages", "text"} & example.keys()):
            raise UserError(f"{path}, line {number}: expected {{\"messages\": [...]}} or {{\"text\": ...}}.")
        examples.append(example)
    if not examples:
        raise UserError(f"{path} holds no examples.")
    return examples


def split_prompt(example: dict) -> tuple[list[dict], str] | None:
    """(conversation before the last assistant turn, that turn's text), or None for text examples."""
    messages = example.get("messages") or []
    for i in range(len(messages) - 1, 0, -1):
        if messages[i]["role"] == "assistant":
            return messages[:i], messages[i]["content"]
    return None


def load_probes() -> list[dict]:
    """The shipped general-knowledge probe set: {"category", "question", "answers"} per line."""
    text = resources.files("localsft.evaluation").joinpath("probes/general.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _token_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Group indices (sorted by length) so that rows x longest row stays within `budget` tokens."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if batches and (len(batches[-1]) + 1) * lengths[i] <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def held_out_loss(switchable: SwitchableModel, examples: list[dict], tuned: bool,
                  max_length: int = 2048) -> float | None:
    """Mean negative log-likelihood per loss-bearing token (assistant turns), base or tuned."""
    from localsft.data.template import tokenize_example

    tokenized = [tokenize_example(switchable.tokenizer, ex) for ex in examples]
    ids = [t.ids[:max_length] for t in tokenized]
    masks = [t.loss_mask[:max_length] for t in tokenized]
    switchable.switch.set_rows([tuned])
    total, count = 0.0, 0
    for batch in _token_batches([len(row) for row in ids], LOSS_TOKENS_PER_BATCH):
        width = max(len(ids[i]) for i in batch)
        if width < 2:
            continue
        tokens = mx.array([ids[i] + [0] * (width - len(ids[i])) for i in batch])
        mask = mx.array([masks[i] + [False] * (width - len(masks[i])) for i in batch])[:, 1:]
        logits = switchable.model(tokens[:, :-1]).astype(mx.float32)
        nll = nn.losses.cross_entropy(logits, tokens[:, 1:]) * mask
        total += nll.sum().item()
        count += int(mask.sum().item())
    return total / count if count else None


def _rate(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def score_answers(answers: list[str], references: list[str], loss: float | None,
                  check: Callable[[str], bool] | None) -> SideScores:
    """One side's metrics from its answers, the references and its held-out loss."""
    return SideScores(
        loss=loss, perplexity=metrics.perplexity(loss),
        exact_match=_rate([metrics.exact_match(a, r) for a, r in zip(answers, references)]),
        chrf=metrics.chrf(answers, references) if answers else None,
        format_adherence=_rate([check(a) for a in answers]) if check else None)


def evaluate_run(run: RunFolder | str | Path, data: str | Path | None = None,
                 settings: SamplingSettings | None = None, probes: bool = True,
                 on_event: Callable[[EvalProgress], None] | None = None,
                 switchable: SwitchableModel | None = None, probe_limit: int | None = None) -> EvalReport:
    """Evaluate a run's base and tuned models on held-out data; write eval.json and eval.md.

    data: a JSONL file instead of the run's data/test.jsonl. settings: decoding settings
    (default greedy, 256 new tokens). switchable: an already loaded model to reuse.
    probe_limit: ask only this many probe questions (spread over the categories).
    """
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    data_path = Path(data) if data else run.data_dir / "test.jsonl"
    examples = read_examples(data_path)
    settings = settings or SamplingSettings(max_tokens=256, temperature=0.0)
    switchable = switchable or load_switchable(run)
    emit = on_event or (lambda event: None)
    check_spec = run.config_dict().get("format_check")
    check = metrics.format_checker(check_spec)

    pairs = [split for ex in examples if (split := split_prompt(ex))]
    prompts = [messages for messages, _ in pairs]
    references = [reference for _, reference in pairs]
    answers = both_sides(switchable, prompts, settings, "answers", emit)
    scores = {}
    for side in SIDES:
        emit(EvalProgress("loss", side, 0, len(examples)))
        loss = held_out_loss(switchable, examples, tuned=side == "tuned")
        scores[side] = score_answers(answers[side], references, loss, check)

    items = [{"prompt": prompt, "reference": reference,
              **{side: answers[side][i] for side in SIDES},
              **{f"{side}_chrf": metrics.sentence_chrf(answers[side][i], reference) for side in SIDES}}
             for i, (prompt, reference) in enumerate(zip(prompts, references))]
    probe_rows = run_probes(switchable, scores, emit, probe_limit) if probes else []
    base_acc, tuned_acc = scores["base"].probe_accuracy, scores["tuned"].probe_accuracy
    retention = tuned_acc / base_acc if base_acc else None
    report = EvalReport(run.name, str(data_path), len(examples), scores["base"], scores["tuned"],
                        retention, check_spec, items, probe_rows)
    atomic_write_text(run.eval_json, json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(run.eval_md, render_markdown(report))
    return report


def both_sides(switchable: SwitchableModel, conversations: list[list[dict]], settings: SamplingSettings,
               stage: str, emit: Callable[[EvalProgress], None]) -> dict[str, list[str]]:
    """Base and tuned answers to every conversation, decoded together in shared batches."""
    emit(EvalProgress(stage, "both", 0, 2 * len(conversations)))
    rows = answer_many(switchable, conversations * 2, ["base"] * len(conversations) + ["tuned"] * len(conversations),
                       settings)
    emit(EvalProgress(stage, "both", len(rows), len(rows)))
    return {"base": rows[:len(conversations)], "tuned": rows[len(conversations):]}


def run_probes(switchable: SwitchableModel, scores: dict[str, SideScores],
               emit: Callable[[EvalProgress], None], limit: int | None = None) -> list[dict]:
    """Ask both sides the probe questions (greedy); fill in probe_accuracy; return per-probe rows."""
    probes = load_probes()
    if limit and limit < len(probes):
        probes = [probes[i * len(probes) // limit] for i in range(limit)]
    conversations = [[{"role": "user", "content": probe["question"]}] for probe in probes]
    settings = SamplingSettings(max_tokens=PROBE_MAX_TOKENS, temperature=0.0)
    answers = both_sides(switchable, conversations, settings, "probes", emit)
    rows = [dict(probe) for probe in probes]
    for side in SIDES:
        for row, answer in zip(rows, answers[side]):
            row[side] = answer
            row[f"{side}_correct"] = metrics.probe_correct(answer, row["answers"])
        scores[side].probe_accuracy = _rate([row[f"{side}_correct"] for row in rows])
    return rows
