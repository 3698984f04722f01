"""Base vs tuned, side by side, for the price of one model.

    chat = open_compare("~/.localsft/runs/my-run")
    for side, piece in chat.send("Write a tagline for our shoes"):
        ...  # side is "base" or "tuned"; pieces of both answers arrive interleaved

One copy of the base weights is loaded; the run's adapter is switched per batch row
(`localsft.inference.switch`), and both answers are decoded as one batch of two rows
(`localsft.inference.batch`), so answering with both costs about as much as one.
Each side keeps its own multi-turn history: the base model sees its own earlier
answers, the tuned model its own.

Any two sides work the same way: `side_slots` attaches more runs of the same base model to
the one bank (a slot each), e.g. a run and the run improved from it, and
`CompareChat(switchable, slots={"left": 1, "right": 2})` answers with both as one batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from localsft.inference.switch import SwitchableModel, load_switchable
from localsft.inference.batch import answer_all, decode_text
from localsft.inference.generate import SamplingSettings, chat_prompt
from localsft.errors import UserError
from localsft.runs.folder import RunFolder

SIDES = ("base", "tuned")
DEFAULT_SLOTS = {"base": 0, "tuned": 1}


def stream_sides(switchable: SwitchableModel, conversations: dict[str, list[dict]],
                 settings: SamplingSettings | None = None,
                 slots: dict[str, int] | None = None) -> Iterator[tuple[str, str]]:
    """Answer each side's conversation ({"base": messages, "tuned": messages}, either or both)
    as one batch; yield `(side, text_piece)` as the answers grow.

    slots: any sides, each with its adapter slot in the switchable's bank (see `side_slots`);
    by default "base" is slot 0 and "tuned" slot 1.
    """
    slots = slots or DEFAULT_SLOTS
    sides = [side for side in slots if side in conversations]
    prompts = [chat_prompt(switchable.tokenizer, conversations[side]) for side in sides]
    for row, piece in decode_text(switchable.model, switchable.tokenizer, prompts, settings,
                                  switchable.switch, adapter_slots=[slots[side] for side in sides]):
        yield sides[row], piece


def side_slots(switchable: SwitchableModel, sides: dict[str, RunFolder | None],
               model_name: str | None) -> dict[str, int]:
    """The adapter slot of each side: None is the base model (slot 0), a run its best adapter,
    attached once to the switchable's bank, so any two of base / parent / new run share one base.

    model_name: the base model the switchable holds (a run's `model_name()`); every run must share it.
    """
    slots = {}
    for side, run in sides.items():
        if run is not None and run.model_name() != model_name:
            raise UserError(f"Run {run.name} was trained on another base model ({run.model_name() or 'the default'}"
                            f"), so it cannot be compared side by side with {model_name or 'the default model'}.")
        slots[side] = 0 if run is None else switchable.bank.add(run.best_adapter())
    return slots


def answer_sides(switchable: SwitchableModel, messages: list[dict],
                 settings: SamplingSettings | None = None) -> dict[str, str]:
    """The complete base and tuned answers to the same conversation."""
    answers = {side: "" for side in SIDES}
    for side, piece in stream_sides(switchable, {side: messages for side in SIDES}, settings):
        answers[side] += piece
    return answers


def answer_many(switchable: SwitchableModel, conversations: list[list[dict]], sides: str | list[str],
                settings: SamplingSettings | None = None, batch_size: int = 16) -> list[str]:
    """Answers to many conversations, decoded in batches (used by eval).

    sides: "base" or "tuned" for all, or one side per conversation (mixed rows share batches).
    """
    sides = [sides] * len(conversations) if isinstance(sides, str) else list(sides)
    prompts = [chat_prompt(switchable.tokenizer, messages) for messages in conversations]
    return answer_all(switchable.model, switchable.tokenizer, prompts, settings, switchable.switch,
                      [side == "tuned" for side in sides], batch_size)


class CompareChat:
    """A two-pane chat: the same user turns go to both sides; each side keeps its own history.

    One instance per user session (a UI keeps it in per-session state, not a global).
    """

    def __init__(self, switchable: SwitchableModel, settings: SamplingSettings | None = None,
                 system: str | None = None, sides: tuple[str, ...] = SIDES,
                 slots: dict[str, int] | None = None) -> None:
        self.switchable = switchable
        self.settings = settings or SamplingSettings()
        self.system = system
        self.slots = slots or {side: DEFAULT_SLOTS[side] for side in sides}  # any sides: see `side_slots`
        self.sides = tuple(self.slots)
        self.history: dict[str, list[dict]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (both sides)."""
        start = [{"role": "system", "content": self.system}] if self.system else []
        self.history = {side: list(start) for side in self.sides}

    def send(self, user_text: str, settings: SamplingSettings | None = None) -> Iterator[tuple[str, str]]:
        """Add a user turn to every side and stream the answers as `(side, text_piece)`.

        The answers join each side's history when the generator ends, also when it is
        closed early (a stopped answer is kept as far as it got).
        """
        for side in self.sides:
            self.history[side].append({"role": "user", "content": user_text})
        answers = {side: "" for side in self.sides}
        try:
            for side, piece in stream_sides(self.switchable, self.history, settings or self.settings, self.slots):
                answers[side] += piece
                yield side, piece
        finally:
            for side in self.sides:
                self.history[side].append({"role": "assistant", "content": answers[side]})

    def send_pairs(self, user_text: str, settings: SamplingSettings | None = None) -> Iterator[dict[str, str]]:
        """Like `send`, but yield the partial answers so far, {side: text}, after each piece
        (handy for streaming into two chat panes)."""
        answers = {side: "" for side in self.sides}
        for side, piece in self.send(user_text, settings):
            answers[side] += piece
            yield dict(answers)


def open_compare(run: RunFolder | str | Path, settings: SamplingSettings | None = None,
                 sides: tuple[str, ...] = SIDES, system: str | None = None,
                 precision: str = "auto") -> CompareChat:
    """Load a run's base model once, attach its adapter, and start a side-by-side chat.

    system: the system message the chat begins with; None: the run's instructions (the system
    prompt it was trained under, `RunFolder.instructions`), "" for none."""
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    return CompareChat(load_switchable(run, precision), settings, run.instructions() if system is None else system,
                       sides)
