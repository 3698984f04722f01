"""Judgements stored in a run folder, and how they become training data.

A vote (RUN/votes.jsonl, written by the blind A/B test) is a preference pair: the winner's answer
is chosen, the loser's rejected; ties say nothing about which is better and are left out. A
correction (RUN/corrections.jsonl) is an answer the user edited into the one they wanted: it is a
supervised example and a pair (edited over original). Both files are append-only JSON lines.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localsft.errors import UserError
from localsft.runs.folder import RunFolder, read_events

CORRECTIONS_FILE = "corrections.jsonl"


@dataclass
class PreferencePair:
    """One judgement as training data: `prompt` is the chat before the answer."""

    prompt: list[dict]
    chosen: str
    rejected: str
    source: str  # "vote" or "correction"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def to_jsonl(self) -> dict:
        """The prompt/chosen/rejected row TRL and mlx-lm-lora read (prompt as text when single-turn)."""
        system = [m["content"] for m in self.prompt if m["role"] == "system"]
        turns = [m for m in self.prompt if m["role"] != "system"]
        prompt = turns[0]["content"] if len(turns) == 1 and turns[0]["role"] == "user" else turns
        row = {"prompt": prompt, "chosen": self.chosen, "rejected": self.rejected}
        if system:
            row["system"] = system[0]
        return row


@dataclass
class Collected:
    """What a run's judgements add up to."""

    votes: int = 0
    ties: int = 0
    corrections: int = 0
    pairs: list[PreferencePair] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)  # {"messages": [..., assistant]} rows

    def describe(self) -> str:
        return (f"{self.votes} vote{'s' * (self.votes != 1)} ({self.ties} tie{'s' * (self.ties != 1)}), "
                f"{self.corrections} correction{'s' * (self.corrections != 1)}: "
                f"{len(self.pairs)} preference pair{'s' * (len(self.pairs) != 1)}, "
                f"{len(self.examples)} new example{'s' * (len(self.examples) != 1)}")


def _run(run: RunFolder | str | Path) -> RunFolder:
    return run if isinstance(run, RunFolder) else RunFolder.open(run)


def _as_messages(prompt: str | list[dict]) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def _append(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:  # one short line: appends do not interleave
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def record_correction(run: RunFolder | str | Path, prompt: str | list[dict], original: str, edited: str,
                      side: str = "tuned", shown: str = "compare") -> dict:
    """Append "the answer should have been `edited`" to RUN/corrections.jsonl; returns the stored row.

    side: whose answer was edited ("base" or "tuned"); shown: where ("compare" or "blind A/B").
    """
    edited = edited.strip()
    if not edited:
        raise UserError("The corrected answer is empty: write the answer you wanted first.")
    if edited == original.strip():
        raise UserError("The corrected answer is the same as the original: change it first.")
    row = {"id": uuid.uuid4().hex[:12], "time": time.time(), "prompt": _as_messages(prompt),
           "original": original, "edited": edited, "side": side, "shown": shown}
    _append(_run(run).path / CORRECTIONS_FILE, row)
    return row


def read_corrections(run: RunFolder | str | Path) -> list[dict]:
    return read_events(_run(run).path / CORRECTIONS_FILE)


def collect(run: RunFolder | str | Path) -> Collected:
    """Every vote and correction of the run, turned into pairs and examples."""
    from localsft.evaluation.abtest import read_votes

    run = _run(run)
    out = Collected()
    for vote in read_votes(run):
        out.votes += 1
        if vote.get("winner") not in ("base", "tuned"):
            out.ties += 1
            continue
        answers = {vote["a_side"]: vote["a"], ("base" if vote["a_side"] == "tuned" else "tuned"): vote["b"]}
        loser = "base" if vote["winner"] == "tuned" else "tuned"
        if answers[vote["winner"]].strip() != answers[loser].strip():
            out.pairs.append(PreferencePair(vote["prompt"], answers[vote["winner"]], answers[loser], "vote",
                                            vote.get("id") or uuid.uuid4().hex[:12]))
    for row in read_corrections(run):
        out.corrections += 1
        out.pairs.append(PreferencePair(row["prompt"], row["edited"], row["original"], "correction", row["id"]))
        out.examples.append({"messages": row["prompt"] + [{"role": "assistant", "content": row["edited"]}]})
    return out


def export_pairs(run: RunFolder | str | Path, path: str | Path) -> int:
    """Write the run's preference pairs as JSONL (prompt/chosen/rejected); returns how many."""
    pairs = collect(run).pairs
    if not pairs:
        raise UserError(f"Run {_run(run).name} has no preference pairs yet: vote in the blind A/B test "
                        "or correct an answer in Compare first.")
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{path} is a folder: give a file name such as pairs.jsonl.")
    from localsft.runs.folder import atomic_write_jsonl

    try:
        atomic_write_jsonl(path, (p.to_jsonl() for p in pairs))
    except OSError as err:
        raise UserError(f"Cannot write {path}: {err.strerror}.") from None
    return len(pairs)


def read_pairs_file(path: str | Path) -> list[PreferencePair]:
    """Pairs from a prompt/chosen/rejected JSONL file (ours, TRL's or mlx-lm-lora's shape)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"Preference file not found: {path}.")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}, line {number}, column {err.colno}: not valid JSON ({err.msg}).") from None
        pairs.append(_pair_from_row(row, f"{path}, line {number}"))
    if not pairs:
        raise UserError(f"{path} holds no preference pairs.")
    return pairs


def _pair_from_row(row, where: str) -> PreferencePair:
    if not isinstance(row, dict) or not all(k in row for k in ("prompt", "chosen", "rejected")):
        raise UserError(f"{where}: expected an object with prompt, chosen and rejected.")
    prompt = _as_messages(row["prompt"]) if isinstance(row["prompt"], (str, list)) else None
    if prompt is None or not all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt):
        raise UserError(f"{where}: prompt must be text or a list of chat messages.")
    if row.get("system"):
        prompt = [{"role": "system", "content": row["system"]}] + prompt
    chosen, rejected = (_answer_text(row[k], f"{where}, {k}") for k in ("chosen", "rejected"))
    return PreferencePair(prompt, chosen, rejected, row.get("source", "file"))


def _answer_text(value, where: str) -> str:
    if isinstance(value, list) and value and isinstance(value[-1], dict):  # TRL's conversational shape
        value = value[-1].get("content")
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: expected a non-empty answer text.")
    return value


def pairs_to_rows(pairs: list[PreferencePair]) -> list[dict]:
    """Pairs as plain dicts (for the run's data folder)."""
    return [asdict(p) for p in pairs]
