"""The fuse check every export runs: does the exported model still behave like the tuned one?

We run held-out prompts (the run's test split, with their reference answers) through
the base model, the adapter-on-base model and the exported model, and compare logits
at every position. Two figures say whether the export is right:

- max abs difference and greedy (top-1) agreement with the adapter-on-base model;
- how much of the adapter's effect survived: 1 - (distance to the tuned model) / (distance
  to the base), with mean absolute logit differences. 100% is the tuned model; 0% is no
  closer to it than to the base. Noise from re-quantization lowers it a little; an export
  that lost the adapter (rounded away by a careless 4-bit re-quantization, or wrong
  weights altogether) drops to 0% or below. Under half fails, loudly; so does a top
  token that differs from the tuned model's at more than one position in ten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from localsft.inference.generate import chat_prompt

MAX_PROBES = 3
MAX_PROBE_TOKENS = 64
MIN_KEPT_EFFECT = 0.5  # an export must be at most half as far from the tuned model as from the base
MIN_GREEDY_AGREEMENT = 0.9  # and pick the tuned model's top token at 9 positions in 10
FALLBACK_PROMPTS = [
    [{"role": "user", "content": "Write a short tagline for a reusable water bottle."}],
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Summarize why people like autumn in one sentence."}],
]


@dataclass
class Probe:
    """One held-out prompt (and its reference answer, when known)."""

    messages: list[dict]
    answer: str

    def ids(self, tokenizer) -> list[int]:
        """The prompt rendered with the tokenizer's chat template, then the answer's tokens."""
        answer_ids = list(tokenizer.encode(self.answer, add_special_tokens=False)) if self.answer else []
        return (chat_prompt(tokenizer, self.messages) + answer_ids)[:MAX_PROBE_TOKENS]


@dataclass
class CheckResult:
    """How an exported model compares with the adapter-on-base model on the probes."""

    fmt: str
    max_abs_diff: float
    greedy_agreement: float  # fraction of positions with the same top-1 token
    positions: int
    adapter_effect: float  # mean |tuned - base| logit difference: what the adapter changed
    kept_effect: float  # 1 - |export - tuned| / |export - base|: 1 = the tuned model, 0 = no closer than the base
    tokens_match: bool = True

    @property
    def passed(self) -> bool:
        return (self.tokens_match and self.kept_effect >= MIN_KEPT_EFFECT
                and self.greedy_agreement >= MIN_GREEDY_AGREEMENT)

    def summary(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        text = (f"fuse check {verdict}: max abs logit difference {self.max_abs_diff:.2e}, greedy agreement "
                f"{self.greedy_agreement:.1%} over {self.positions} positions, adapter effect kept "
                f"{max(self.kept_effect, 0):.1%}")
        if not self.tokens_match:
            text += "; the exported tokenizer splits the probes differently"
        return text

    def as_dict(self) -> dict:
        return {"format": self.fmt, "passed": self.passed, "max_abs_diff": self.max_abs_diff,
                "greedy_agreement": self.greedy_agreement, "positions": self.positions,
                "adapter_effect": self.adapter_effect, "kept_effect": self.kept_effect,
                "tokens_match": self.tokens_match}


def _read_chats(path: Path) -> list[list[dict]]:
    chats = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                messages = json.loads(line).get("messages")
            except (json.JSONDecodeError, AttributeError):
                continue
            if messages and any(m.get("role") == "assistant" for m in messages):
                chats.append(messages)
    return chats


def make_probes(data_dir: Path) -> list[Probe]:
    """Held-out chats from the run (test split, else valid), or a few fixed prompts."""
    chats = _read_chats(data_dir / "test.jsonl") or _read_chats(data_dir / "valid.jsonl")
    probes = []
    for messages in chats[:MAX_PROBES]:
        last = max(i for i, m in enumerate(messages) if m.get("role") == "assistant")
        probes.append(Probe(messages[:last], str(messages[last].get("content", ""))))
    if not probes:
        probes = [Probe(m, "") for m in FALLBACK_PROMPTS]
    return probes


def probe_logits(model: nn.Module, token_ids: list[list[int]]) -> list[mx.array]:
    """Logits (positions x vocab, fp32) of each token sequence, computed as one right-padded batch.

    Attention is causal, so padding after a sequence does not change its positions' logits.
    """
    width = max(len(ids) for ids in token_ids)
    batch = mx.array([ids + [0] * (width - len(ids)) for ids in token_ids])
    logits = model(batch).astype(mx.float32)
    mx.eval(logits)
    return [logits[row, :len(ids)] for row, ids in enumerate(token_ids)]


def compare(fmt: str, logits: list[mx.array], tuned: list[mx.array], base: list[mx.array],
            tokens_match: bool = True) -> CheckResult:
    """Compare an export's logits with the tuned (adapter-on-base) and base models' logits."""
    max_diff, agree, positions, effect, to_tuned, to_base = 0.0, 0, 0, 0.0, 0.0, 0.0
    for got, want, before in zip(logits, tuned, base):
        n = min(got.shape[0], want.shape[0])
        got, want, before = got[:n], want[:n], before[:n]
        max_diff = max(max_diff, mx.abs(got - want).max().item())
        agree += (got.argmax(-1) == want.argmax(-1)).sum().item()
        positions += n
        effect += mx.abs(want - before).mean().item() * n
        to_tuned += mx.abs(got - want).mean().item() * n
        to_base += mx.abs(got - before).mean().item() * n
    kept = 1 - to_tuned / to_base if to_base > 0 else (1.0 if to_tuned == 0 else 0.0)
    positions = max(positions, 1)
    return CheckResult(fmt, max_diff, agree / positions, positions, effect / positions, kept, tokens_match)
