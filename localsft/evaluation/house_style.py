"""Format checks: your house style (the required shape of an answer, described without regular
expressions), a regex or a JSON schema; `format_checker` turns a run's format_check into one test.

A house style is part of the run's `format_check` (the same mapping the recipes use), so the
evaluation, the verdict and anything else that scores answers use it unchanged:

    format_check:
      starts_with: "Subject:"          # the answer's first characters
      line_starts_with: "Price:"       # some line of the answer starts with this
      ends_with: "!"                   # the answer's last characters
      max_length: 120                  # at most this many characters
      regex: "..."                     # for experts (the whole answer must match)

Surrounding whitespace of an answer is ignored; letter case is not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from localsft.errors import UserError

RULES = ("starts_with", "line_starts_with", "ends_with", "max_length")
# key -> how the studio and the CLI describe a broken rule
BROKEN = {"starts_with": "does not start with {!r}", "line_starts_with": "has no line starting with {!r}",
          "ends_with": "does not end with {!r}", "max_length": "is longer than {} characters",
          "regex": "does not match the pattern", "json_schema": "is not JSON of the required shape"}


def _rule(key: str, value) -> Callable[[str], bool]:
    if key == "max_length":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"House style: the maximum length must be a whole number of characters, not {value!r}.")
        return lambda text: len(text) <= value
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"House style: {key.replace('_', ' ')} needs some text.")
    value = value.strip()
    if key == "starts_with":
        return lambda text: text.startswith(value)
    if key == "ends_with":
        return lambda text: text.endswith(value)
    return lambda text: any(line.strip().startswith(value) for line in text.splitlines())


def rule_checks(spec: dict) -> dict[str, Callable[[str], bool]]:
    """One check per house-style rule present in `spec` (each takes the trimmed answer)."""
    return {key: _rule(key, spec[key]) for key in RULES if spec.get(key) not in (None, "")}


def clean_spec(starts_with: str = "", line_starts_with: str = "", ends_with: str = "",
               max_length: int | float | None = None, regex: str = "") -> dict | None:
    """The format_check mapping for what the user filled in (None when nothing is set)."""
    spec = {"starts_with": (starts_with or "").strip(), "line_starts_with": (line_starts_with or "").strip(),
            "ends_with": (ends_with or "").strip(), "regex": (regex or "").strip(),
            "max_length": int(max_length) if max_length and max_length > 0 else None}  # 0: no limit
    spec = {k: v for k, v in spec.items() if v not in (None, "")}
    return spec or None


@dataclass
class StylePreview:
    """How many of the user's own answers pass the house style, and the first few that do not."""

    passed: int
    total: int
    failures: list[tuple[int, str]]  # (example number, why), at most a few

    def describe(self) -> str:
        if not self.total:
            return "No answers to check."
        return f"{self.passed} of {self.total} of your answers follow this house style."


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


def hopeless_checker(spec: dict | None) -> Callable[[str], bool] | None:
    """A function telling, from the start of an answer, that no way of finishing it can pass
    `format_checker(spec)`; None when nothing in the spec can tell early. A decode that only needs
    the verdict stops such an answer there (training's format watch: the base model's first
    answers run to the token limit, and are off-format after a few words).

    Early signs: a start that is not (a beginning of) `starts_with`, more than `max_length`
    characters, and a start no match of the regex begins with (partial matching of the `regex`
    package, which mlx-lm's tokenizers already install). `ends_with`, `line_starts_with` and
    JSON schemas are only judged on the whole answer."""
    if not spec:
        return None
    signs: list[Callable[[str], bool]] = []
    rules = rule_checks(spec)  # the same rules (and the same errors) as format_checker
    if "starts_with" in rules:
        start = spec["starts_with"].strip()
        signs.append(lambda text: not (text.startswith(start) or start.startswith(text)))
    if "max_length" in rules:  # a start already too long stays too long
        fits = rules["max_length"]
        signs.append(lambda text: not fits(text))
    if spec.get("regex"):
        try:
            import regex

            pattern = regex.compile(spec["regex"], regex.DOTALL)
        except Exception:  # noqa: BLE001  (no early verdict: the whole answer is still judged)
            pattern = None
        if pattern is not None:
            signs.append(lambda text: pattern.fullmatch(text, partial=True) is None)
    if not signs:
        return None
    # trailing whitespace may yet be trimmed away, so judge the start without it
    return lambda text: any(sign(text.strip()) for sign in signs)


def preview(spec: dict | None, answers: list[str], rows: list[int] | None = None, limit: int = 5) -> StylePreview:
    """Check the house style on the user's own answers; rows: the spreadsheet row of each answer."""
    format_checker(spec)  # a bad rule or regex is a UserError before anything is counted
    rules = dict(rule_checks(spec or {}))
    if spec and ("regex" in spec or "json_schema" in spec):
        rules.update({k: format_checker({k: spec[k]}) for k in ("regex", "json_schema") if k in spec})
    passed, failures = 0, []
    for i, answer in enumerate(answers):
        broken = [key for key, check in rules.items() if not check(answer.strip())]
        if not broken:
            passed += 1
        elif len(failures) < limit:
            value = (spec or {}).get(broken[0])
            failures.append(((rows[i] if rows else i + 1), "answer " + BROKEN[broken[0]].format(value)))
    return StylePreview(passed, len(answers), failures)
