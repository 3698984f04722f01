"""Turn tokenized examples into fixed-shape batches: length buckets and sequence packing.

Two ways to batch, both with few distinct shapes so the compiled step is not retraced
for every batch:
- packed (default): examples are placed first-fit-decreasing into rows of a fixed
  width; a row holds several short examples, each attending only to itself (see
  `loss.py`); rows per micro-batch follow the token budget.
- by count (`batch_size` set): the shuffled examples are grouped `batch_size` at a time
  and padded to the next width bucket, as mlx_lm batches. Not sorted by length: on mixed
  data, batches of one length give the short examples' few answer tokens as many steps
  as the long ones' many (the held-out loss was 60% worse in the benchmark).

Each example of n tokens gives n-1 (input, target) pairs. Loss-bearing target positions
are listed in `loss_index` so the LM head runs on those positions only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from localsft.errors import UserError

_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
_WIDTH_STEPS = ((64, 16), (512, 32), (2048, 128))  # (up to, round to a multiple of); beyond: 512
EVAL_BATCH_TOKENS = 1024  # validation batches when the config's batch_tokens is not sized yet
# A validation batch holds this many training micro-batches: a forward pass keeps no activations
# for a backward one. Measured on the default model (validation subsets of 8, 2-core CPU): 12-15%
# fewer CPU seconds than batches of the training size (glossary 3.7 vs 4.3 s, brand-voice 7.0 vs 7.9).
EVAL_BATCH_FACTOR = 4


def bucket(n: int) -> int:
    """The smallest shape bucket holding n (roughly 1.5x apart, then multiples of 1024).

    Used for the number of loss positions, which varies most from batch to batch."""
    for size in _BUCKETS:
        if n <= size:
            return size
    return -(-n // 1024) * 1024


def width_bucket(n: int) -> int:
    """Row width holding n positions: a multiple of 32 up to 512 (as mlx_lm pads), coarser beyond.

    Finer than `bucket` because every padded position costs a full forward and backward
    pass; each new width costs one trace of the compiled step (about 0.1-0.3 s here)."""
    step = next((s for limit, s in _WIDTH_STEPS if n <= limit), 512)
    return max(step, -(-n // step) * step)


@dataclass
class Example:
    """One tokenized example: ids and, per id, whether predicting it carries loss."""

    ids: np.ndarray  # int32, length n
    loss_mask: np.ndarray  # bool, length n

    @property
    def width(self) -> int:
        """Positions it occupies in a row: n tokens give n-1 predictions."""
        return len(self.ids) - 1

    @property
    def loss_tokens(self) -> int:
        return int(self.loss_mask[1:].sum())


@dataclass
class Batch:
    """Arrays for one micro-batch (numpy; the loop turns them into mx arrays)."""

    inputs: np.ndarray  # (rows, width) int32
    targets: np.ndarray  # (rows, width) int32
    segments: np.ndarray | None  # (rows, width) int32: example number per position, -1 padding; None: unpacked
    loss_index: np.ndarray  # (k,) int32 flat positions whose prediction carries loss (padded with 0)
    loss_weight: np.ndarray  # (k,) float32: 1 real, 0 padding
    tokens: int  # real (non-padding) positions
    loss_tokens: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.inputs.shape, len(self.loss_index))


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise UserError(f"{path}, line {number} is not valid JSON: {err.msg}.") from None
    return rows


def rows_made_once(path: Path, make) -> list[dict]:
    """Rows a run makes itself (`make()`: paraphrases, replay) and keeps in RUN/data: made and
    written the first time, read back after, so a resumed run trains on the same rows."""
    path = Path(path)
    if path.exists():
        return read_jsonl(path)
    from localsft.runs.folder import atomic_write_jsonl

    rows = make()
    atomic_write_jsonl(path, rows)
    return rows


def tokenize_examples(rows: list[dict], tokenizer, max_seq_len: int, mask_prompt: bool = True) -> list[Example]:
    """Tokenize normalized rows ({"messages": ...} or {"text": ...}); truncate; drop rows with no loss."""
    from localsft.data.template import tokenize_example

    out = []
    for row in rows:
        tokenized = tokenize_example(tokenizer, row, mask_prompt)
        ids = np.asarray(tokenized.ids[: max_seq_len + 1], dtype=np.int32)
        mask = np.asarray(tokenized.loss_mask[: max_seq_len + 1], dtype=bool)
        example = Example(ids, mask)
        if example.width >= 1 and example.loss_tokens > 0:
            out.append(example)
    return out


def _first_fit_decreasing(order: list[int], lengths: list[int], min_width: int) -> list[tuple[int, list[int]]]:
    """Pack example indices into rows as (width, indices); longest first, each into the first row with room.

    A row is `min_width` wide, or the width bucket of its first (longest) example, so the room a
    long example leaves is filled with short ones.
    """
    order = sorted(order, key=lambda i: -lengths[i])  # stable: ties keep the shuffled order
    rows: list[tuple[int, list[int]]] = []
    free: list[int] = []
    for i in order:
        need = lengths[i]
        for r, room in enumerate(free):
            if need <= room:
                rows[r][1].append(i)
                free[r] -= need
                break
        else:
            width = max(min_width, width_bucket(need))
            rows.append((width, [i]))
            free.append(width - need)
    return rows


def plan_batches(examples: list[Example], batch_tokens: int, pack_width: int | None,
                 batch_size: int | None, rng: np.random.Generator | None) -> list[list[list[int]]]:
    """Micro-batches as lists of rows of example indices. rng=None keeps a fixed order (eval)."""
    order = list(range(len(examples)))
    if rng is not None:
        rng.shuffle(order)
    lengths = [e.width for e in examples]
    batches: list[list[list[int]]] = []
    if batch_size is not None:
        if rng is None:  # evaluation: order does not matter, so save padding
            order.sort(key=lambda i: lengths[i])
        batches = [[[i] for i in order[s:s + batch_size]] for s in range(0, len(order), batch_size)]
    else:
        groups: dict[int, list[list[int]]] = {}
        for width, row in _first_fit_decreasing(order, lengths, pack_width or 0):
            groups.setdefault(width, []).append(row)
        for width, rows in sorted(groups.items()):
            if rng is not None:
                rng.shuffle(rows)
            per_batch = max(1, batch_tokens // width)
            batches += [rows[s:s + per_batch] for s in range(0, len(rows), per_batch)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def make_batch(examples: list[Example], rows: list[list[int]], packed: bool,
               pack_width: int | None = None) -> Batch:
    """Lay the rows out in arrays padded to a shape bucket."""
    used = [sum(examples[i].width for i in row) for row in rows]
    width = max(pack_width or 0, width_bucket(max(used))) if packed else width_bucket(max(used))
    inputs = np.zeros((len(rows), width), np.int32)
    targets = np.zeros((len(rows), width), np.int32)
    segments = np.full((len(rows), width), -1, np.int32)
    loss_positions = []
    for r, row in enumerate(rows):
        start = 0
        for s, i in enumerate(row):
            ex = examples[i]
            end = start + ex.width
            inputs[r, start:end] = ex.ids[:-1]
            targets[r, start:end] = ex.ids[1:]
            segments[r, start:end] = s
            loss_positions.append(r * width + start + np.flatnonzero(ex.loss_mask[1:]))
            start = end
    positions = np.concatenate(loss_positions).astype(np.int32)
    k = min(bucket(len(positions)), inputs.size)
    loss_index = np.zeros(k, np.int32)
    loss_index[: len(positions)] = positions
    loss_weight = np.zeros(k, np.float32)
    loss_weight[: len(positions)] = 1.0
    return Batch(inputs, targets, segments if packed else None, loss_index, loss_weight,
                 tokens=int(sum(used)), loss_tokens=len(positions))


class BatchPlan:
    """The deterministic sequence of micro-batches of a run: epoch e's order depends on (seed, e) only.

    That is what makes resume exact: a checkpoint records (epoch, index) and the same
    batches come back. With `small_steps` and `small` (their (batch_tokens, pack_width), from
    sizing.batch_plan), the run begins with "epoch" SMALL: that many steps of smaller micro-batches
    (a shuffled part of the data), then epoch 0.
    """

    SMALL = -1

    def __init__(self, examples: list[Example], config, small: tuple[int, int] | None = None) -> None:
        if not examples:
            raise UserError("No training examples with answer tokens to learn from.")
        self.examples = examples
        self.config = config
        self.packed = config.packs
        self.small = small
        self.small_steps = (config.small_steps or 0) if self.packed and small else 0
        self._cache: dict[int, list[list[list[int]]]] = {}

    def first_epoch(self) -> int:
        """Where a new run begins: SMALL when it has small steps."""
        return self.SMALL if self.small_steps else 0

    def epoch(self, e: int) -> list[list[list[int]]]:
        if e not in self._cache:
            rng = np.random.default_rng([self.config.seed, e] if e >= 0 else [self.config.seed, 0, -e])
            budget, width = self._batching(e)
            plan = plan_batches(self.examples, budget, width if self.packed else None,
                                None if self.packed else self._batch_size(), rng)
            if e == self.SMALL:
                plan = plan[:self.small_steps * self.config.grad_accumulation]
            self._cache = {k: v for k, v in self._cache.items() if k == e - 1}  # this one and the one before
            self._cache[e] = plan
        return self._cache[e]

    def _batching(self, e: int) -> tuple[int, int | None]:
        """(batch_tokens, pack_width) of epoch e's micro-batches."""
        if e == self.SMALL:
            return self.small
        return self.config.batch_tokens, self.config.pack_width

    def pack_width(self, e: int) -> int | None:
        return self._batching(e)[1]

    def _batch_size(self) -> int:
        return self.config.batch_size or max(1, self.config.batch_tokens // self.config.max_seq_len)

    def batch(self, e: int, index: int) -> Batch:
        return make_batch(self.examples, self.epoch(e)[index], self.packed, self.pack_width(e))

    def steps_per_epoch(self) -> int:
        return -(-len(self.epoch(0)) // self.config.grad_accumulation)

    def total_steps(self) -> int:
        """Optimizer steps of the whole run (iters, or the small steps and epochs x steps per epoch)."""
        if self.config.iters:
            return self.config.iters
        small = -(-len(self.epoch(self.SMALL)) // self.config.grad_accumulation) if self.small_steps else 0
        return small + max(1, round(self.config.epochs * self.steps_per_epoch()))

    def tokens_per_epoch(self) -> int:
        return sum(e.width for e in self.examples)


def eval_batches(examples: list[Example], config) -> list[Batch]:
    """Validation batches in a fixed order (packed the same way as training, EVAL_BATCH_FACTOR
    times as many rows a batch)."""
    packed = config.packs
    size = None if packed else (config.batch_size or 1) * EVAL_BATCH_FACTOR
    budget = (config.batch_tokens or EVAL_BATCH_TOKENS) * EVAL_BATCH_FACTOR  # unsized: e.g. a benchmark's scorer
    plan = plan_batches(examples, budget, config.pack_width if packed else None, size, None)
    return [make_batch(examples, rows, packed, config.pack_width) for rows in plan]
