"""Text metrics for held-out evaluation: exact match, chrF, format adherence, probe answers.

All work on plain strings, so each can be checked on known inputs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

from localsft.errors import UserError


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


def _regex_check(pattern_text: str) -> Callable[[str], bool]:
    try:
        pattern = re.compile(pattern_text, re.DOTALL)
    except re.error as err:
        raise UserError(f"The recipe's format_check regex is invalid: {err}") from None
    return lambda text: pattern.fullmatch(text.strip()) is not None


def _json_schema_check(schema: dict) -> Callable[[str], bool]:
    import jsonschema

    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        validator.check_schema(schema)
    except jsonschema.SchemaError as err:
        raise UserError(f"The recipe's format_check JSON schema is invalid: {err.message}") from None

    def is_valid(text: str) -> bool:
        try:
            return validator.is_valid(json.loads(text.strip()))
        except json.JSONDecodeError:
            return False

    return is_valid


def format_checker(spec: dict | None) -> Callable[[str], bool] | None:
    """A function telling whether an answer has the recipe's format, or None without a check.

    spec: {"regex": PATTERN} (the whole trimmed answer must match),
    {"json_schema": SCHEMA} (the trimmed answer must be JSON valid against the schema), and/or
    house-style rules (localsft.evaluation.house_style); an answer must pass all of them.
    """
    from localsft.evaluation.house_style import rule_checks

    if not spec:
        return None
    checks = list(rule_checks(spec).values())  # house-style rules: starts_with, max_length, ...
    if "regex" in spec:
        checks.append(_regex_check(spec["regex"]))
    if "json_schema" in spec:
        checks.append(_json_schema_check(spec["json_schema"]))
    if not checks:
        raise UserError("format_check needs a house-style rule (starts_with, line_starts_with, ends_with, "
                        "max_length), a 'regex' or a 'json_schema' key.")
    return lambda text: all(check(text.strip()) for check in checks)


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
