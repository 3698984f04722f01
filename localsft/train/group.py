"""The processes training together, and the collective operations the loop needs from them.

A `Group` of one (SINGLE) is plain training; `init()` returns a larger one when the process
was started by `mlx.launch`. How the group trains is described in distributed.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from localsft.train.batching import Batch, Example, make_batch
from localsft.train.checkpoint import TrainState


@dataclass(frozen=True)
class Group:
    """The processes training together. A group of one (the default) is plain training."""

    handle: object | None = None  # mx.distributed.Group when size > 1
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run folder."""
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This rank's share of `items`: items rank, rank + size, ..."""
        return items[self.rank::self.size]

    def local_batch(self, examples: list[Example], rows: list[list[int]], packed: bool,
                    pack_width: int | None) -> Batch:
        """This rank's rows of one global micro-batch; an all-masked row when it has none."""
        mine = self.shard(rows)
        if mine:
            return make_batch(examples, mine, packed, pack_width)
        idle = make_batch(examples, rows[:1], packed, pack_width)
        idle.loss_weight[:] = 0.0  # zero loss and zero gradient: the sums are unchanged
        idle.tokens = idle.loss_tokens = 0
        return idle

    def sum(self, tree):
        """`tree` with every array replaced by its sum over the group (one message per dtype)."""
        if self.size == 1:
            return tree
        flat = tree_flatten(tree)
        lookup = dict(flat)
        summed: dict[str, mx.array] = {}
        for dtype in dict.fromkeys(v.dtype for _, v in flat):  # the same order on every rank
            keys = [k for k, v in flat if v.dtype == dtype]
            parts = [lookup[k] for k in keys]
            total = mx.distributed.all_sum(mx.concatenate([p.reshape(-1) for p in parts]), group=self.handle)
            offsets = np.cumsum([0] + [p.size for p in parts])
            summed.update({k: total[int(a):int(b)].reshape(p.shape)
                           for k, p, a, b in zip(keys, parts, offsets[:-1], offsets[1:])})
        return tree_unflatten([(k, summed[k]) for k, _ in flat])

    def sum_values(self, *values: float) -> list[float]:
        """Python numbers added up across the group."""
        if self.size == 1:
            return list(values)
        return self.sum(mx.array(values, mx.float32)).tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on at least one (e.g. a stop request)."""
        return self.sum_values(float(flag))[0] > 0

    def broadcast(self, tree):
        """Rank 0's arrays, on every rank."""
        if self.size == 1:
            return tree
        return self.sum(tree if self.is_main else tree_map(mx.zeros_like, tree))

    def from_main(self, produce):
        """`produce()` run on rank 0 only; its JSON-able result is sent to every rank."""
        if self.size == 1:
            return produce()
        payload = json.dumps(produce()).encode() if self.is_main else b""
        length = int(self.sum(mx.array(len(payload), mx.int32)).item())  # int: float32 is exact to 16 MB only
        data = np.frombuffer(payload, np.uint8) if self.is_main else np.zeros(length, np.uint8)
        received = self.sum(mx.array(data))
        mx.eval(received)
        return json.loads(bytes(np.array(received)).decode())

    def sync_state(self, model: nn.Module, optimizer, state: TrainState) -> TrainState:
        """Start every rank from rank 0's weights, optimizer state and position (its checkpoint on resume)."""
        if self.size == 1:
            return state
        model.update(self.broadcast(model.trainable_parameters()))
        optimizer.state = self.broadcast(optimizer.state)
        mx.eval(model.parameters(), optimizer.state)
        return TrainState(**self.from_main(lambda: asdict(state)))


SINGLE = Group()


def init() -> Group:
    """The group this process belongs to: size > 1 when started by `mlx.launch`, else one process."""
    handle = mx.distributed.init()
    if handle.size() == 1:
        return SINGLE
    return Group(handle, handle.rank(), handle.size())
