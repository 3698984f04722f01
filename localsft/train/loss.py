"""The training loss: packed rows with a block-diagonal causal mask, logits only where loss is.

mlx-lm models build their attention mask from the cache object (`cache.make_mask`), not
from an argument. `_MaskCarrier` is a stand-in cache that hands the model our mask and
passes keys and values through unchanged, so every mlx-lm model runs packed rows as is.
RoPE depends only on relative positions, so an example packed after others gets the
same loss as alone (positions need not restart per example).
"""

from __future__ import annotations

import localsft  # noqa: F401  (fast BLAS before mlx)
import mlx.core as mx
import mlx.nn as nn


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


def hidden_states(model: nn.Module, inputs: mx.array, segments: mx.array | None) -> mx.array:
    """Final-norm hidden states (rows, L, D); packed rows get the block-diagonal mask."""
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
