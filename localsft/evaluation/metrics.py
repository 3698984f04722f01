"""Text metrics for held-out evaluation: exact match, chrF, format adherence, probe answers.

All work on plain strings, so each can be checked on known inputs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

from localsft.errors import UserError
from localsft.evaluation.house_style import format_checker  # noqa: F401  (the format check lives there)


def normalize(text: str) -> str:
    """Whitespace collapsed and trimmed, case folded: what "the same answer" ignores."""
    return " ".join(text.split()).casefold()


def exact_match(prediction: str, reference: str) -> bool:
    """Same text up to surrounding/repeated whitespace and letter case."""
    return normalize(prediction) == normalize(reference)


def chrf(predictions: list[str], references: list[str]) -> float:
    """Corpus chrF (character n-gram F-score, 0-100) as sacrebleu computes it."""
    from sacrebleu.metrics import CHRF

    if not predictions:
        return 0.0
    return float(CHRF().corpus_score(predictions, [references]).score)


def sentence_chrf(prediction: str, reference: str) -> float:
    """chrF of one answer against its reference (0-100)."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().sentence_score(prediction, [reference]).score)


def _words(text: str) -> str:
    return " " + " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split()) + " "


def probe_correct(answer: str, accepted: list[str]) -> bool:
    """Whether `answer` states one of the accepted answers (as whole words, any case)."""
    words = _words(answer)
    return any(_words(option) in words for option in accepted if option.strip())


def perplexity(loss: float | None) -> float | None:
    """exp(mean negative log-likelihood per token)."""
    if loss is None:
        return None
    return math.exp(min(loss, 700.0))
