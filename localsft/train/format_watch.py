"""Held-out format adherence while training: short greedy answers to a few fixed validation prompts.

For a run with a `format_check`, the validation loss alone picks badly: on small data the
loss keeps "improving" while the answers lose the format (issue 15 measured exactly that).
So validations also answer `FORMAT_PROMPTS` held-out prompts greedily (every one, or every
k-th when that decode costs more than `WATCH_SHARE` of the training between validations),
and the best checkpoint is the checked one with the highest adherence (ties: the lower
validation loss). An answer stops as soon as it can no longer have the format. Stopping as
soon as the format held was tried and measured: the run ended at step 20 of 60 with 19 of 20
held-out answers the same label (format right, content not yet learned).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable

FORMAT_PROMPTS = 8  # enough to tell 100% from 75%
MAX_ANSWER_TOKENS = 256
# One batched decode step of the watch costs about as much as training on this many tokens
# (default model, CPU: 8 rows decode in ~120 ms a step; training runs ~8 ms a token).
DECODE_STEP_TOKENS = 16
# The watch may cost at most about half the training between two of its checks. Measured on the
# glossary set (40 rows, answers ~40 tokens), a check at every validation (every 5 steps) took
# 8-9 s against 4.5 s of training: two thirds of the run was the watch.
WATCH_SHARE = 0.5


def held_out_chats(rows: list[dict], limit: int) -> list[tuple[list[dict], str]]:
    """(prompt messages, reference answer) of the first `limit` chat rows ending in an answer."""
    chats = [(r["messages"][:-1], r["messages"][-1]["content"]) for r in rows
             if r.get("messages") and r["messages"][-1]["role"] == "assistant"]
    return chats[:limit]


def answer_budget(tokenizer, references: list[str], floor: int = 16) -> int:
    """New tokens to allow: half again the longest reference, so a correct answer always fits."""
    return budget_for(max((len(tokenizer.encode(r)) for r in references), default=floor), floor)


def budget_for(longest: int, floor: int = 16) -> int:
    """`answer_budget` for a longest reference of `longest` tokens."""
    return min(MAX_ANSWER_TOKENS, max(floor, math.ceil(1.5 * longest) + 8))


CUT = " …"  # ends an answer the format watch stopped early (it could no longer have the format)


def greedy_answers(model, tokenizer, chats: list[list[dict]], max_tokens: int,
                   hopeless: Callable[[str], bool] | None = None, batch_size: int = 16) -> list[str]:
    """Greedy answers to every chat with the model as it is now, decoded `batch_size` rows at a time.

    hopeless: says from an answer's start that it cannot end in the format; such an answer stops
    there and ends with CUT (the verdict is the same, the decode shorter); all rows decode as one batch."""
    from localsft.inference.batch import answer_all, decode_text
    from localsft.inference.generate import SamplingSettings, chat_prompt
    from localsft.platform import blas

    prompts = [chat_prompt(tokenizer, messages) for messages in chats]
    settings = SamplingSettings(max_tokens=max_tokens, temperature=0.0)
    with blas.threads(blas.DECODE_THREADS):
        if hopeless is None:
            return answer_all(model, tokenizer, prompts, settings, batch_size=batch_size)
        answers, cut = [""] * len(prompts), set()
        for row, piece in decode_text(model, tokenizer, prompts, settings, halted=cut):
            answers[row] += piece
            if row not in cut and hopeless(answers[row]):
                cut.add(row)
    return [answer + CUT if row in cut else answer for row, answer in enumerate(answers)]


@dataclass
class FormatWatch:
    """Measures adherence of the live model on fixed held-out prompts."""

    check: Callable[[str], bool]
    chats: list[list[dict]]
    max_tokens: int
    tokenizer: object
    hopeless: Callable[[str], bool] | None = None
    answer_tokens: int = 0  # the longest held-out reference: about how many steps a check decodes

    @classmethod
    def for_run(cls, config, valid_rows: list[dict], loaded) -> "FormatWatch | None":
        """A watch when the run has a format check and held-out chats; else None."""
        from localsft.evaluation.house_style import hopeless_checker
        from localsft.evaluation.metrics import format_checker

        check = format_checker(config.format_check)
        pairs = held_out_chats(valid_rows, FORMAT_PROMPTS)
        if check is None or not pairs:
            return None
        longest = max(len(loaded.tokenizer.encode(ref)) for _, ref in pairs)
        return cls(check, [chat for chat, _ in pairs], budget_for(longest), loaded.tokenizer,
                   hopeless_checker(config.format_check), longest)

    def checks_every(self, tokens_between_validations: float) -> int:
        """Validations from one format check to the next: every one while a check costs less than
        WATCH_SHARE of the training between validations, else spaced so that it does (long answers,
        short training steps). The validations between measure the loss and keep a checkpoint."""
        cost = self.answer_tokens * DECODE_STEP_TOKENS
        return max(1, round(cost / max(WATCH_SHARE * tokens_between_validations, 1.0)))

    @property
    def tolerance(self) -> float:
        """One prompt's worth of adherence: differences this small are noise."""
        return 1 / len(self.chats)

    def measure(self, model) -> tuple[float, list[str]]:
        """Share of the held-out prompts whose greedy answer has the format (0-1), and the answers
        (in the held-out order: the loop shows the first ones as samples instead of answering again;
        an answer stopped once it could no longer have the format ends with CUT)."""
        answers = greedy_answers(model, self.tokenizer, self.chats, self.max_tokens, self.hopeless)
        return sum(bool(self.check(a)) for a in answers) / len(answers), answers


def is_better(adherence: float | None, val_loss: float, top_adherence: float | None,
              best_val_loss: float | None, tolerance: float = 0.0) -> bool:
    """Is this checkpoint the new best? `top_adherence`: the highest adherence seen so far.

    Clearly better format (more than `tolerance`, one prompt's worth, above the top) wins; within
    `tolerance` of the top, the lower validation loss wins. Ranking on adherence alone kept a
    step-5 checkpoint (8 of 8 in format, loss 0.78) over step 15 (7 of 8, loss 0.24) whose
    answers were far closer to the references; measured on 8 prompts, one answer is noise."""
    if not math.isfinite(val_loss):
        return False
    lower_loss = best_val_loss is None or val_loss < best_val_loss
    if adherence is None:
        return lower_loss
    if top_adherence is None:
        return True  # the first format measurement (the step-0 validation has none)
    if adherence > top_adherence + tolerance + 1e-9:
        return True
    return adherence >= top_adherence - tolerance - 1e-9 and lower_loss
