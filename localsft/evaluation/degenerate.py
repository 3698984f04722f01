"""The check after every training: do the tuned model's answers look like answers at all?

A few held-out prompts are answered greedily and each answer is looked at for the ways a
small-data fine-tune breaks: a repetition loop ("Hi,\\n\\nHi,\\n\\n..."), an empty answer, the
same answer to different prompts, an answer that runs until the token limit. The verdict
says what was seen, in plain words, with the likely fix; it is written to RUN/health.json.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

HEALTH_FILE = "health.json"
HEALTH_PROMPTS = 8
_LOOP = re.compile(r"(.{2,80}?)(?:\s*\1){3,}", re.DOTALL)  # a piece said 4+ times in a row
LOOP_SHARE = 0.4  # the loop covers this much of the answer
SAME_ANSWER_SHARE = 0.6  # one answer given to this share of prompts (whose references differ)


@dataclass
class Health:
    """The verdict on a handful of held-out answers."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    fix: str = ""
    answers: list[dict] = field(default_factory=list)  # {"prompt", "answer", "reference", "flags"}

    def summary(self) -> str:
        """One line for the CLI and the app."""
        n = len(self.answers)
        if self.ok:
            return f"Check after training: {n} held-out answers look like real answers."
        return f"Check after training: {' '.join(self.problems)} Likely fix: {self.fix}"

    def to_dict(self) -> dict:
        return asdict(self)


def looping(answer: str, reference: str = "") -> bool:
    """A piece of text repeated 4+ times in a row covering much of the answer (and not of the reference)."""
    def loop_share(text: str) -> float:
        found = max((m.end() - m.start() for m in _LOOP.finditer(text)), default=0)
        return found / max(len(text), 1)

    return loop_share(answer) >= LOOP_SHARE and loop_share(reference) < LOOP_SHARE


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def same_answer_rows(answers: list[str], references: list[str]) -> set[int]:
    """Rows sharing one answer given to most prompts, when the references are not that alike."""
    if len(answers) < 3:
        return set()
    common, count = Counter(_normal(a) for a in answers).most_common(1)[0]
    ref_count = Counter(_normal(r) for r in references).most_common(1)[0][1] if references else 0
    if count < 3 or count / len(answers) < SAME_ANSWER_SHARE or ref_count >= count:
        return set()
    return {i for i, a in enumerate(answers) if _normal(a) == common}


def judge(prompts: list[str], answers: list[str], references: list[str], hit_limit: list[bool],
          final_loss: float | None = None) -> Health:
    """The verdict on answers to held-out prompts. hit_limit: per answer, whether it ran to the token limit."""
    flags: list[list[str]] = [[] for _ in answers]
    for i, (answer, reference) in enumerate(zip(answers, references)):
        if not answer.strip():
            flags[i].append("empty")
        elif looping(answer, reference):
            flags[i].append("repetition loop")
        if hit_limit[i] and answer.strip():
            flags[i].append("ran to the token limit")
    for i in same_answer_rows(answers, references):
        flags[i].append("same answer as other prompts")
    counts = Counter(flag for row in flags for flag in row)
    n = len(answers)
    problems = []
    words = {"empty": "were empty", "repetition loop": "repeat one piece of text over and over",
             "ran to the token limit": "ran on until the token limit",
             "same answer as other prompts": "are the same answer to different prompts"}
    for flag, text in words.items():
        if counts[flag] and (flag != "ran to the token limit" or counts[flag] * 2 >= n):
            problems.append(f"{counts[flag]} of {n} held-out answers {text}.")
    rows = [{"prompt": p, "answer": a, "reference": r, "flags": f}
            for p, a, r, f in zip(prompts, answers, references, flags)]
    return Health(ok=not problems, problems=problems, fix=likely_fix(counts, final_loss) if problems else "",
                  answers=rows)


def likely_fix(counts: Counter, final_loss: float | None) -> str:
    """The most likely remedy, from what went wrong and how far the training loss fell."""
    if final_loss is not None and final_loss < 0.05:
        return ("the model memorised the examples: train fewer steps (iters) or with a lower learning_rate, "
                "or add more varied examples.")
    if counts["empty"] or counts["same answer as other prompts"]:
        return ("the model has not learned the task yet: train more steps (iters), and check that the outputs "
                "in your data differ from one another and are not empty.")
    return ("train more steps (iters) so the model learns where answers end, and check the data for outputs "
            "that repeat text or run far longer than the rest (`localsft data check`).")


def write_health(run_dir: Path, health: Health) -> Path:
    """RUN/health.json (atomically)."""
    from localsft.runs.folder import atomic_write_text

    path = Path(run_dir) / HEALTH_FILE
    atomic_write_text(path, json.dumps(health.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return path


def check_model(model, tokenizer, valid_rows: list[dict], final_loss: float | None = None,
                limit: int = HEALTH_PROMPTS) -> Health | None:
    """Answer up to `limit` held-out prompts greedily with `model` and judge them (None: no chat rows)."""
    from localsft.train.format_watch import answer_budget, greedy_answers, held_out_chats

    pairs = held_out_chats(valid_rows, limit)
    if not pairs:
        return None
    references = [ref for _, ref in pairs]
    budget = answer_budget(tokenizer, references, floor=64)
    answers = greedy_answers(model, tokenizer, [chat for chat, _ in pairs], budget)
    hit_limit = [len(tokenizer.encode(a)) >= budget - 1 for a in answers]
    prompts = [chat[-1]["content"] if chat else "" for chat, _ in pairs]
    return judge(prompts, [a.strip() for a in answers], references, hit_limit, final_loss)
