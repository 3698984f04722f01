"""The preference losses (DPO, ORPO) and the per-answer log-probabilities they are built from.

A batch of P pairs is 2P rows: chosen answers in rows 0..P-1, rejected ones in rows P..2P-1,
each row prompt + answer, right-padded. Only the answer tokens count (the prompt is context).

DPO (Rafailov et al. 2023): with the policy's and the reference's summed answer log-probs,
    margin = beta * ((pi_c - ref_c) - (pi_r - ref_r))
    loss   = -(1 - eps) * log sigmoid(margin) - eps * log sigmoid(-margin)
eps is label smoothing (the "conservative DPO" of Mitchell 2023): it assumes a share eps of the
judgements are flipped, which keeps a few dozen noisy votes from driving the margin to infinity.

ORPO (Hong et al. 2024) needs no reference: with p = exp(mean answer log-prob),
    loss = NLL(chosen) - beta * log sigmoid(log odds(p_c) - log odds(p_r)),  odds(p) = p / (1 - p).

Both add the chosen answer's own loss (mean NLL per token; for DPO weighted by `sft_weight`, as in
RPO, Pang et al. 2024). Measured here without it: when the rejected answer is the chosen one minus a
closing line, DPO learns mostly "do not end the answer" (its distinctive token is the end of turn),
and the tuned model rambled to the token limit; the NLL term keeps the chosen answers likely as a
whole, so it learns to close with the line instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from localsft.train.batching import width_bucket
from localsft.train.loss import token_losses


@dataclass
class PairBatch:
    """Arrays for P pairs (numpy; turned into mx arrays by `arrays`)."""

    inputs: np.ndarray  # (2P, width) int32
    targets: np.ndarray  # (2P, width) int32
    loss_index: np.ndarray  # (k,) flat positions of answer tokens
    loss_row: np.ndarray  # (k,) the row each of them belongs to
    tokens: int

    def arrays(self) -> tuple:
        return mx.array(self.inputs), mx.array(self.targets), mx.array(self.loss_index), mx.array(self.loss_row)


def make_pair_batch(chosen: list[tuple[np.ndarray, np.ndarray]],
                    rejected: list[tuple[np.ndarray, np.ndarray]]) -> PairBatch:
    """(ids, loss mask) per answer -> one right-padded batch, chosen rows first."""
    sequences = chosen + rejected
    width = width_bucket(max(len(ids) - 1 for ids, _ in sequences))
    inputs = np.zeros((len(sequences), width), np.int32)
    targets = np.zeros((len(sequences), width), np.int32)
    index, rows = [], []
    for r, (ids, mask) in enumerate(sequences):
        n = len(ids) - 1
        inputs[r, :n], targets[r, :n] = ids[:-1], ids[1:]
        positions = np.nonzero(mask[1:])[0]
        index.append(r * width + positions)
        rows.append(np.full(len(positions), r))
    return PairBatch(inputs, targets, np.concatenate(index).astype(np.int32), np.concatenate(rows).astype(np.int32),
                     int(sum(len(ids) - 1 for ids, _ in sequences)))


def answer_logps(model: nn.Module, inputs, targets, loss_index, loss_row) -> tuple[mx.array, mx.array]:
    """(summed log-prob of each row's answer, its token count), both shape (rows,)."""
    logp = -token_losses(model, inputs, targets, None, loss_index)
    owner = (loss_row[:, None] == mx.arange(inputs.shape[0])[None, :]).astype(mx.float32)  # (k, rows)
    return logp @ owner, owner.sum(axis=0)


def log_sigmoid(x: mx.array) -> mx.array:
    return -mx.logaddexp(mx.zeros_like(x), -x)


def dpo_losses(policy: mx.array, reference: mx.array, beta: float, smoothing: float) -> tuple[mx.array, mx.array]:
    """(per-pair DPO loss, margin); `policy`/`reference` are (2P,) summed answer log-probs."""
    p = policy.shape[0] // 2
    margin = beta * ((policy[:p] - reference[:p]) - (policy[p:] - reference[p:]))
    return -(1 - smoothing) * log_sigmoid(margin) - smoothing * log_sigmoid(-margin), margin


def orpo_losses(policy: mx.array, counts: mx.array, beta: float) -> tuple[mx.array, mx.array]:
    """(per-pair ORPO loss, log-odds ratio); the NLL part is the chosen answer's mean token loss."""
    p = policy.shape[0] // 2
    mean = mx.minimum(policy / mx.maximum(counts, 1.0), -1e-6)  # mean log-prob, strictly below 0
    log_odds = mean - mx.log1p(-mx.exp(mean))
    ratio = log_odds[:p] - log_odds[p:]
    return -mean[:p] - beta * log_sigmoid(ratio), ratio


def pair_loss(model: nn.Module, inputs, targets, loss_index, loss_row, reference,
              kind: str, beta: float, smoothing: float, sft_weight: float) -> tuple[mx.array, mx.array]:
    """(mean loss over the batch's pairs, per-pair margin: > 0 when the pair is ranked right)."""
    policy, counts = answer_logps(model, inputs, targets, loss_index, loss_row)
    if kind == "orpo":
        losses, ratio = orpo_losses(policy, counts, beta)
        return losses.mean(), ratio
    p = policy.shape[0] // 2
    losses, margin = dpo_losses(policy, reference, beta, smoothing)
    nll = -policy[:p] / mx.maximum(counts[:p], 1.0)  # the chosen answers' own loss (corrections included)
    return (losses + sft_weight * nll).mean(), margin
