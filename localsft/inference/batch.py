"""Decode several chat prompts as one batch, each row with its own adapter (or none).

Prompts of different lengths are left-padded into one batch with mlx-lm's batch KV
caches (padding is masked out of attention, positions start at 0 for every row), so
each row decodes as it would alone. Rows stop at an end-of-turn token or at
`max_tokens`; finished rows leave the batch. The next step is queued before the current
tokens are read back (as mlx-lm's own generator does), so Python work overlaps compute.
"""

from __future__ import annotations

from collections.abc import Iterator

import mlx.core as mx
import mlx.nn as nn

from localsft.inference.switch import RowSwitch
from localsft.inference.generate import SamplingSettings

PREFILL_STEP = 512  # prompt tokens per forward pass while filling the cache


def _batch_cache(model: nn.Module, left_padding: list[int], batched: bool = False) -> list:
    """Empty per-layer batch caches (of the model's own cache kinds) for left-padded rows.

    A single row gets the model's plain cache (no padding, no mask, as mlx-lm decodes it)
    unless `batched` asks for a batch cache that other rows can join later.
    """
    from mlx_lm.models.cache import make_prompt_cache

    if len(left_padding) == 1 and not batched:
        return make_prompt_cache(model)
    per_row = [make_prompt_cache(model) for _ in left_padding]
    cache = [layer[0].merge([row[i] for row in per_row]) for i, layer in enumerate(zip(*per_row))]
    for layer in cache:
        layer.prepare(left_padding=left_padding)
    return cache


def _fill_cache(model: nn.Module, tokens: mx.array, cache: list) -> None:
    """Run prompt tokens through the model only to fill the cache.

    Their logits are not needed, so where the model exposes its transformer body (mlx-lm
    models call it `model.model`) the LM head is skipped: for a 49k vocabulary that is
    about a fifth of the prompt's compute.
    """
    body = getattr(model, "model", None)
    run = body if isinstance(body, nn.Module) else model
    for start in range(0, tokens.shape[1], PREFILL_STEP):
        run(tokens[:, start:start + PREFILL_STEP], cache=cache)
        mx.eval([c.state for c in cache])


def takes_padded_batches(model: nn.Module) -> bool:
    """Whether the model's attention accepts a left-padded batch's mask. mlx-lm's Gemma 2 adds the
    mask to scores shaped per KV group (rows, kv heads, group, L, S), which a (rows, 1, L, S) batch
    mask cannot broadcast to: such a model decodes one row at a time."""
    return getattr(getattr(model, "args", None), "model_type", None) != "gemma2"


def prefill(model: nn.Module, prompts: list[list[int]], batched: bool = False) -> tuple[list, mx.array]:
    """Fill a cache with left-padded `prompts`; returns it and the logits after each prompt.

    Every prompt must be non-empty; `batched` always makes a batch cache (see _batch_cache).
    """
    width = max(len(p) for p in prompts)
    cache = _batch_cache(model, [width - len(p) for p in prompts], batched)
    tokens = mx.array([[0] * (width - len(p)) + list(p) for p in prompts])
    _fill_cache(model, tokens[:, :-1], cache)
    return cache, model(tokens[:, -1:], cache=cache)[:, -1, :]


def plain_caches(model: nn.Module) -> bool:
    """Whether every layer of the model keeps a plain (unbounded, unquantized) KV cache, whose keys
    and values can be cut at any token and continued (sliding-window layers cannot)."""
    from mlx_lm.models.cache import KVCache, make_prompt_cache

    return all(type(layer) is KVCache for layer in make_prompt_cache(model))


def prefill_after(model: nn.Module, known: list[tuple[mx.array, mx.array]], rest: list[int]) -> tuple[list, mx.array]:
    """`prefill` (as a batch cache) of one prompt whose first tokens' keys and values are `known`
    (per layer, shaped (1, heads, n, dim); needs `plain_caches`); `rest`: the tokens after them."""
    from mlx_lm.models.cache import BatchKVCache, make_prompt_cache

    row = make_prompt_cache(model)
    for layer, (keys, values) in zip(row, known):
        layer.state = (keys, values, keys.shape[2])
    tokens = mx.array([rest])
    _fill_cache(model, tokens[:, :-1], row)
    logits = model(tokens[:, -1:], cache=row)[:, -1, :]
    return [BatchKVCache.merge([layer]) for layer in row], logits


def _sampler(settings: SamplingSettings):
    from mlx_lm.sample_utils import make_sampler

    sample = make_sampler(temp=settings.temperature, top_p=settings.top_p)

    def next_tokens(logits: mx.array) -> mx.array:
        return sample(logits - mx.logsumexp(logits, axis=-1, keepdims=True))

    return next_tokens


def row_slots(rows: int, adapter_on: list[bool] | None, adapter_slots: list[int] | None) -> list[int]:
    """The adapter slot of every row: given, or 1/0 from the on/off list, or 1 for all."""
    if adapter_slots is not None:
        return list(adapter_slots)
    return [1 if on else 0 for on in adapter_on] if adapter_on is not None else [1] * rows


def decode_tokens(model: nn.Module, prompts: list[list[int]], eos_ids: set[int],
                  settings: SamplingSettings | None = None, switch: RowSwitch | None = None,
                  adapter_on: list[bool] | None = None,
                  adapter_slots: list[int] | None = None,
                  halted: set[int] | None = None) -> Iterator[list[tuple[int, int]]]:
    """Yield, step by step, `(row, token)` for every row still decoding.

    prompts: token ids per row. adapter_slots: per row, the adapter slot it uses (0 = base;
    needs `switch`, the RowSwitch of the model's AdapterBank); adapter_on is the one-adapter
    shorthand (True = slot 1). End-of-turn tokens (`eos_ids`) end a row and are not yielded.
    halted: rows the caller adds while a step is yielded leave the batch after that step.
    """
    settings = settings or SamplingSettings()
    if not prompts or any(not p for p in prompts) or settings.max_tokens < 1:
        raise ValueError("every row needs a non-empty prompt, and max_tokens must be at least 1")
    if settings.seed is not None:
        mx.random.seed(settings.seed)
    sample = _sampler(settings)
    rows = list(range(len(prompts)))  # batch position -> row
    slots = row_slots(len(prompts), adapter_on, adapter_slots)
    if switch is not None:
        switch.set_adapters(slots)
    cache, logits = prefill(model, prompts)
    y = sample(logits)
    mx.async_eval(y)
    counts = [0] * len(prompts)
    while rows:
        if any(counts[row] + 1 < settings.max_tokens for row in rows):  # queue the next step now
            next_y = sample(model(y[:, None], cache=cache)[:, -1, :])
            mx.async_eval(next_y)
        step, keep = [], []
        for i, (row, token) in enumerate(zip(rows, y.tolist())):
            if token in eos_ids:
                continue
            step.append((row, token))
            counts[row] += 1
            if counts[row] < settings.max_tokens:
                keep.append(i)
        if step:
            yield step
            if halted:
                keep = [i for i in keep if rows[i] not in halted]
        if len(keep) < len(rows):
            rows = [rows[i] for i in keep]
            if not rows:
                break
            index = mx.array(keep)
            for layer in cache:
                layer.filter(index)
            next_y = next_y[index]
            if switch is not None:
                slots = [slots[i] for i in keep]
                switch.set_adapters(slots)
        y = next_y


def decode_text(model: nn.Module, tokenizer, prompts: list[list[int]],
                settings: SamplingSettings | None = None, switch: RowSwitch | None = None,
                adapter_on: list[bool] | None = None,
                adapter_slots: list[int] | None = None,
                halted: set[int] | None = None) -> Iterator[tuple[int, str]]:
    """Like `decode_tokens`, but yield `(row, text_piece)` as each row's text grows (and `halted`
    rows, added by the caller while their piece is yielded, stop there)."""
    if len(prompts) > 1 and not takes_padded_batches(model):  # one row at a time, each on its plain cache
        slots = row_slots(len(prompts), adapter_on, adapter_slots)
        for row, prompt in enumerate(prompts):
            for _, piece in decode_text(model, tokenizer, [prompt], settings, switch, adapter_slots=[slots[row]]):
                yield row, piece
                if halted and row in halted:
                    break
        return
    detokenizers = [tokenizer.detokenizer for _ in prompts]
    eos_ids = set(tokenizer.eos_token_ids)

    def finish(row: int) -> Iterator[tuple[int, str]]:
        detokenizers[row].finalize()
        piece = detokenizers[row].last_segment  # reading it consumes it
        if piece:
            yield row, piece

    active = set(range(len(prompts)))
    for step in decode_tokens(model, prompts, eos_ids, settings, switch, adapter_on, adapter_slots, halted):
        for row, token in step:
            detokenizers[row].add_token(token)
            piece = detokenizers[row].last_segment
            if piece:
                yield row, piece
        present = {row for row, _ in step}
        for row in sorted(active - present):  # ended at an end-of-turn token (or just before)
            yield from finish(row)
        active = present
    for row in sorted(active):
        yield from finish(row)


def answer_all(model: nn.Module, tokenizer, prompts: list[list[int]],
               settings: SamplingSettings | None = None, switch: RowSwitch | None = None,
               adapter_on: list[bool] | None = None, batch_size: int = 16,
               adapter_slots: list[int] | None = None) -> list[str]:
    """Complete answers for many prompts, decoded `batch_size` rows at a time.

    Prompts are grouped by length so that rows in a batch need little padding.
    """
    slots = row_slots(len(prompts), adapter_on, adapter_slots)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        pieces = decode_text(model, tokenizer, [prompts[i] for i in chunk], settings, switch,
                             adapter_slots=[slots[i] for i in chunk])
        for row, piece in pieces:
            answers[chunk[row]] += piece
    return answers
