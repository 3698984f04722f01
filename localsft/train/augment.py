"""More inputs for very small sets: the base model paraphrases each user input; the output stays the user's.

Off by default (`augment_paraphrases: true` turns it on) and only used below
`AUGMENT_BELOW` training examples. Only training rows are paraphrased: the held-out
splits stay the user's real rows, so validation and evaluation measure real inputs.
The paraphrases are written once to RUN/data/train_paraphrased.jsonl and read back on
resume, so a resumed run trains on the same rows.
"""

from __future__ import annotations

import copy
from pathlib import Path

AUGMENT_BELOW = 50
FILE = "train_paraphrased.jsonl"
INSTRUCTION = ("Rewrite the following message in different words, keeping its meaning and every detail "
               "(names, numbers). Reply with the rewritten message only.\n\n{text}")
MAX_TOKENS = 160


def _last_user(messages: list[dict]) -> int | None:
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    return users[-1] if users else None


def usable(paraphrase: str, original: str) -> bool:
    """A paraphrase worth training on: not empty, not the original, not wildly longer or shorter."""
    text, orig = paraphrase.strip(), original.strip()
    return bool(text) and text.casefold() != orig.casefold() and 0.4 * len(orig) <= len(text) <= 2.5 * len(orig) + 20


def paraphrase_rows(rows: list[dict], loaded, seed: int = 0) -> list[dict]:
    """`rows` plus, for each chat row, a copy whose last user turn is the base model's paraphrase.

    Call before any adapter is attached: the paraphrases come from the base model."""
    from localsft.inference.batch import answer_all
    from localsft.inference.generate import SamplingSettings, chat_prompt
    from localsft.platform import blas

    targets = [(r, i) for r in rows if r.get("messages") and (i := _last_user(r["messages"])) is not None]
    if not targets:
        return list(rows)
    prompts = [chat_prompt(loaded.tokenizer, [{"role": "user", "content": INSTRUCTION.format(
        text=r["messages"][i]["content"])}]) for r, i in targets]
    settings = SamplingSettings(max_tokens=MAX_TOKENS, temperature=0.7, top_p=0.9, seed=seed)
    with blas.threads(blas.DECODE_THREADS):
        answers = answer_all(loaded.model, loaded.tokenizer, prompts, settings)
    extra = []
    for (row, i), text in zip(targets, answers):
        if usable(text, row["messages"][i]["content"]):
            new = copy.deepcopy(row)
            new["messages"][i]["content"] = text.strip()
            extra.append(new)
    return list(rows) + extra


def augmented_train_rows(rows: list[dict], loaded, data_dir: Path, seed: int = 0) -> list[dict]:
    """The training rows with paraphrases (made once per run, kept in RUN/data), or `rows` when the set is big."""
    from localsft.train.batching import rows_made_once

    path = Path(data_dir) / FILE
    if len(rows) >= AUGMENT_BELOW and not path.exists():
        return rows
    return rows_made_once(path, lambda: paraphrase_rows(rows, loaded, seed))
