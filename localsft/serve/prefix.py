"""Reuse the keys and values of a prompt's start that an earlier request already computed.

Chat requests to one model mostly begin alike: the chat template's system turn (SmolLM2 puts a
default one in every prompt) is about 24 of the 40 tokens of a short question, and a client that
continues a conversation resends all of it. Filling the cache for those tokens again is wasted
work on every request. So the engine keeps, per base model and adapter slot (an adapter changes
the keys and values of every layer after it), the keys and values of the latest prompt's first
tokens, and a new prompt that starts the same way fills only the rest.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import mlx.core as mx

MIN_REUSE = 8  # shorter shared starts are not worth a separate fill
MAX_TOKENS = 512  # keys and values kept per entry: about 23 MB for the default model in fp32
MAX_ENTRIES = 16  # (base, adapter slot) pairs kept, least recently used dropped first


class PrefixStore:
    """The first tokens of the latest prompt per (base, slot) and their per-layer keys and values."""

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple[Path, int], tuple[list[int], list[tuple[mx.array, mx.array]]]] = OrderedDict()

    def lookup(self, base: Path, slot: int, prompt: list[int]) -> tuple[int, list[tuple[mx.array, mx.array]]]:
        """(n, keys and values of the prompt's first n tokens per layer), or (0, []) when nothing fits.

        The last prompt token is never covered: its logits give the first answer token."""
        entry = self.entries.get((base, slot))
        if entry is None:
            return 0, []
        tokens, layers = entry
        n = 0
        for mine, theirs in zip(tokens, prompt[:-1]):
            if mine != theirs:
                break
            n += 1
        if n < MIN_REUSE:
            return 0, []
        self.entries.move_to_end((base, slot))
        return n, [(k[:, :, :n], v[:, :, :n]) for k, v in layers]

    def store(self, base: Path, slot: int, prompt: list[int], layers: list[tuple[mx.array, mx.array]]) -> None:
        """Keep `prompt`'s keys and values (per layer, shaped (1, heads, length, dim)) for later prompts."""
        n = min(len(prompt), MAX_TOKENS)
        kept = [(mx.contiguous(k[:, :, :n]), mx.contiguous(v[:, :, :n])) for k, v in layers]
        mx.eval(kept)
        self.entries[(base, slot)] = (list(prompt[:n]), kept)
        self.entries.move_to_end((base, slot))
        while len(self.entries) > MAX_ENTRIES:
            self.entries.popitem(last=False)
