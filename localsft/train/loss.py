"""The training loss: packed rows with a block-diagonal causal mask, logits only where loss is.

mlx-lm models build their attention mask from the cache object (`cache.make_mask`), not
from an argument. `_MaskCarrier` is a stand-in cache that hands the model our mask and
passes keys and values through unchanged, so every mlx-lm model runs packed rows as is.
RoPE depends only on relative positions, so an example packed after others gets the
same loss as alone (positions need not restart per example).

Attention is computed in blocks of query rows (`chunked_attention`): on MLX's CPU backend
attention is dense, so a causal L x L score matrix spends half its softmax on masked
entries. Queries `s:e` only ever see keys `:e`, so each block gets exactly those keys:
the same result (within float rounding) for 11% less training time in the benchmark
(`benchmarks/train_vs_mlx_lm.py`: 214 s against 242 s).
"""

from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager

import mlx.core as mx
import mlx.nn as nn

ATTENTION_CHUNK = 64  # query rows per attention block (best of 22-88 measured on the default model)
_SDPA = mx.fast.scaled_dot_product_attention
_chunk = contextvars.ContextVar("localsft_attention_chunk", default=0)
_lock = threading.Lock()
_users = 0


def _causal_sdpa(q: mx.array, k: mx.array, v: mx.array, *, scale: float, mask=None, **kwargs) -> mx.array:
    """mx.fast.scaled_dot_product_attention, in query blocks when inside `chunked_attention`.

    Only for self-attention with a causal mask ("causal", or a boolean array that is causal,
    as ours always is); anything else goes to MLX unchanged.
    """
    chunk, n = _chunk.get(), q.shape[2]
    causal = (isinstance(mask, str) and mask == "causal") or (isinstance(mask, mx.array) and mask.shape[-2:] == (n, n))
    if not chunk or n <= chunk or k.shape[2] != n or not causal or kwargs.get("sinks") is not None:
        return _SDPA(q, k, v, scale=scale, mask=mask, **kwargs)
    blocks = []
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        block_mask = mask if isinstance(mask, str) else mask[..., s:e, :e]  # "causal" aligns to the last key
        blocks.append(_SDPA(q[:, :, s:e], k[:, :, :e], v[:, :, :e], scale=scale, mask=block_mask, **kwargs))
    return mx.concatenate(blocks, axis=2)


@contextmanager
def chunked_attention(chunk: int = ATTENTION_CHUNK):
    """Models called (traced) in this block compute causal self-attention in query blocks.

    mlx-lm models call `mx.fast.scaled_dot_product_attention` by name, so it is swapped
    for `_causal_sdpa` while any thread is inside; other threads' calls pass straight through.
    """
    global _users
    with _lock:
        if _users == 0:
            mx.fast.scaled_dot_product_attention = _causal_sdpa
        _users += 1
    token = _chunk.set(chunk)
    try:
        yield
    finally:
        _chunk.reset(token)
        with _lock:
            _users -= 1
            if _users == 0:
                mx.fast.scaled_dot_product_attention = _SDPA


class _MaskCarrier:
    """Looks like an empty KV cache to mlx-lm's attention; supplies a fixed mask."""

    offset = 0

    def __init__(self, mask: mx.array) -> None:
        self.mask = mask

    def make_mask(self, n: int, return_array: bool = False, window_size: int | None = None) -> mx.array:
        if window_size is None:
            return self.mask
        rows = mx.arange(n)
        return self.mask & (rows[:, None] < rows[None, :] + window_size)

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        return keys, values


def packed_mask(segments: mx.array) -> mx.array:
    """(rows, 1, L, L) bool: causal, and only within the same packed example."""
    n = segments.shape[1]
    causal = mx.arange(n)[:, None] >= mx.arange(n)[None, :]
    same = segments[:, :, None] == segments[:, None, :]
    return mx.expand_dims(same & causal, 1)


def _lm_head(model: nn.Module):
    if hasattr(model, "lm_head"):
        return model.lm_head
    return model.model.embed_tokens.as_linear


def hidden_states(model: nn.Module, inputs: mx.array, segments: mx.array | None,
                  chunk: int = ATTENTION_CHUNK) -> mx.array:
    """Final-norm hidden states (rows, L, D); packed rows get the block-diagonal mask.

    chunk: query rows per attention block (0: one block, MLX's own attention as is)."""
    with chunked_attention(chunk):
        if segments is None:
            return model.model(inputs)
        carrier = _MaskCarrier(packed_mask(segments))
        return model.model(inputs, cache=[carrier] * len(model.layers))


def token_losses(model: nn.Module, inputs, targets, segments, loss_index) -> mx.array:
    """Cross-entropy at the flat positions `loss_index` (the LM head runs only there)."""
    h = hidden_states(model, inputs, segments)
    h = h.reshape(-1, h.shape[-1])[loss_index]
    logits = _lm_head(model)(h).astype(mx.float32)
    return nn.losses.cross_entropy(logits, targets.reshape(-1)[loss_index])


def loss_sum(model: nn.Module, inputs, targets, segments, loss_index, loss_weight) -> tuple[mx.array, mx.array]:
    """(summed loss, loss-token count). Callers divide by max(count, 1): an all-masked batch gives 0, not NaN."""
    losses = token_losses(model, inputs, targets, segments, loss_index) * loss_weight
    return losses.sum(), loss_weight.sum()
