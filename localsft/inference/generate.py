"""Chat generation on one model: the chat template applied, answers streamed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import mlx.core as mx

from localsft.models.loading import LoadedModel


@dataclass
class SamplingSettings:
    """The usual knobs; temperature 0 means greedy (deterministic)."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


def chat_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of `messages` rendered as in training (data/template.py), ready for the answer."""
    from localsft.data.template import has_chat_template, render

    if has_chat_template(tokenizer):
        return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True))
    return list(tokenizer.encode(render(tokenizer, messages, add_generation_prompt=True), add_special_tokens=False))


def stream_chat(loaded: LoadedModel, messages: list[dict],
                settings: SamplingSettings | None = None) -> Iterator[str]:
    """Yield the answer to `messages` piece by piece; stops at an end-of-turn token."""
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    settings = settings or SamplingSettings()
    if settings.seed is not None:
        mx.random.seed(settings.seed)
    sampler = make_sampler(temp=settings.temperature, top_p=settings.top_p)
    prompt = chat_prompt(loaded.tokenizer, messages)
    for response in stream_generate(loaded.model, loaded.tokenizer, prompt,
                                    max_tokens=settings.max_tokens, sampler=sampler):
        if response.text:
            yield response.text
