"""Checks on each example and on the set: bad characters, duplicates, conflicts, length, size.

Severity: "error" on a row means the row is dropped (the rest are kept); "error" without
a line means the set cannot be trained on. "warning" means kept, but worth a look.
"""

from __future__ import annotations

import hashlib
import json
import re

from localsft.data.mapping import RowError
from localsft.data.template import TokenizedExample

MIN_EXAMPLES = 10  # below this, training cannot learn anything but the examples themselves
RECOMMENDED_EXAMPLES = 50  # below this, an adapter mostly memorises; 100-1,000 is typical
MIN_HELD_OUT = 5  # fewer validation examples than this give a validation loss that is mostly noise

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_UNDECODABLE = re.compile(r"[\udc80-\udcff\ufffd]")
_SPACE = re.compile(r"\s+")


def _texts(example: dict) -> list[str]:
    return [example["text"]] if "text" in example else [m["content"] for m in example["messages"]]


def clean_characters(example: dict) -> str | None:
    """Drop control characters in place (returns a warning), or RowError on undecodable bytes."""
    for text in _texts(example):
        if _UNDECODABLE.search(text):
            raise RowError("bytes that are not valid text in this file's encoding "
                           "(save the file as UTF-8)", code="undecodable")
    found = sorted({f"U+{ord(c):04X}" for text in _texts(example) for c in _CONTROL.findall(text)})
    if not found:
        return None
    if "text" in example:
        example["text"] = _CONTROL.sub("", example["text"])
    else:
        for m in example["messages"]:
            m["content"] = _CONTROL.sub("", m["content"])
    return f"control characters removed ({', '.join(found)})"


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def prompt_and_answer(example: dict) -> tuple[str, str]:
    """The text before the last assistant turn and that turn (plain text: all of it, nothing)."""
    if "text" in example:
        return example["text"], ""
    messages = example["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    prompt = "\x1f".join(f"{m['role']}\x1e{m['content']}" for m in messages[:last])
    return prompt, messages[last]["content"]


class Seen:
    """Where each exact and normalised example and input was first seen ("row 3"); digests only (small)."""

    def __init__(self):
        self.exact: dict[bytes, str] = {}
        self.normal: dict[bytes, str] = {}
        self.inputs: dict[bytes, tuple[str, bytes]] = {}

    def group_key(self, example: dict) -> bytes:
        """Examples with the same normalised input share a key: they must land in the same split."""
        return _digest(_normal(prompt_and_answer(example)[0]))

    def check(self, where: str, example: dict) -> str | None:
        """RowError for a duplicate; a warning for the same input with another output; else None.

        `where` names the example's row as messages say it ("row 5"); later messages name it."""
        exact = _digest(json.dumps(example, ensure_ascii=False, sort_keys=True))
        if exact in self.exact:
            raise RowError(f"exact duplicate of {self.exact[exact]}", code="duplicate")
        prompt, answer = prompt_and_answer(example)
        normal = _digest(_normal(prompt) + "\x1d" + _normal(answer))
        if normal in self.normal:
            raise RowError(f"duplicate of {self.normal[normal]} apart from case and spacing",
                           code="near duplicate")
        self.exact[exact], self.normal[normal] = where, where
        key, out = _digest(_normal(prompt)), _digest(_normal(answer))
        first = self.inputs.setdefault(key, (where, out))
        if answer and first[1] != out:
            return (f"same input as {first[0]} but a different output "
                    "(conflicting answers teach the model to hedge)")
        return None


def check_length(tokens: TokenizedExample, max_seq_len: int) -> str | None:
    """RowError when no answer token fits in max_seq_len; a warning when the end is cut off."""
    if len(tokens) <= max_seq_len:
        return None
    if not any(tokens.loss_mask[:max_seq_len]):
        raise RowError(f"the prompt alone is longer than the maximum of {max_seq_len} tokens, "
                       "so none of the answer would be trained", code="too long")
    return (f"{len(tokens)} tokens, longer than the maximum of {max_seq_len}: "
            f"the last {len(tokens) - max_seq_len} will be cut off in training")


def _examples(n: int) -> str:
    return f"{n} example" if n == 1 else f"{n} examples"


def set_problems(kept: int, valid_fraction: float) -> list[tuple[str, str]]:
    """(severity, message) about the size of the set."""
    if kept < MIN_EXAMPLES:
        return [("error", f"Only {kept} usable examples: at least {MIN_EXAMPLES} are needed to train "
                          f"(and {RECOMMENDED_EXAMPLES} or more are recommended).")]
    problems = []
    if kept < RECOMMENDED_EXAMPLES:
        problems.append(("warning", f"Only {kept} examples: with fewer than {RECOMMENDED_EXAMPLES} a fine-tune "
                                    "tends to memorise them instead of learning the style; 100-1,000 is typical."))
    held_out = round(kept * valid_fraction)
    if valid_fraction > 0 and held_out < MIN_HELD_OUT:
        problems.append(("warning", f"Only {_examples(max(held_out, 1))} can be held out for validation "
                                    f"({valid_fraction:.0%}): the validation loss will be noisy; "
                                    f"{MIN_HELD_OUT / valid_fraction:.0f}+ examples give a steadier one."))
    return problems


LONG_OUTPUT_FACTOR = 4  # an output this many times the median length (in tokens) is flagged...
LONG_OUTPUT_MIN_EXTRA = 64  # ...when it is also this many tokens longer than the median
_REPEAT = re.compile(r"(.{8,200}?)(?:\s*\1){3,}", re.DOTALL)  # a piece of 8+ characters said 4+ times in a row
REPEAT_SHARE = 0.5  # of the output


def repeated_text(answer: str) -> str | None:
    """A warning when most of an output is one piece of text repeated (a paste or export error)."""
    best = max(_REPEAT.finditer(answer), key=lambda m: m.end() - m.start(), default=None)
    if best is None or (best.end() - best.start()) < REPEAT_SHARE * len(answer.strip()):
        return None
    piece = " ".join(best.group(1).split())
    times = len(re.findall(re.escape(best.group(1)), answer))
    shown = piece if len(piece) <= 40 else piece[:37] + "..."
    return (f"the output repeats {shown!r} {times} times; the model would learn to loop "
            "(fix the cell or drop the row)")


def long_outputs(answer_tokens: list[int]) -> list[tuple[int, str]]:
    """(index, warning) for outputs far longer than the rest of the set, in tokens."""
    if len(answer_tokens) < 5:
        return []
    median = sorted(answer_tokens)[len(answer_tokens) // 2]
    limit = max(LONG_OUTPUT_FACTOR * median, median + LONG_OUTPUT_MIN_EXTRA)
    return [(i, f"the output is {n} tokens, far longer than the rest ({n / max(median, 1):.0f}x the typical "
                f"{median}); a few very long outputs dominate what the model learns (kept out of the held-out splits)")
            for i, n in enumerate(answer_tokens) if n > limit]
