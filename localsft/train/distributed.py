"""Data-parallel training with MLX's own distributed engine (`mx.distributed`, `mlx.launch`).

Every process of the group walks the same sequence of global micro-batches (the
`BatchPlan` depends on the seed only) and takes rows rank::size of each; a process
left without a row runs one all-masked row, which adds zero loss and zero gradient.
Before each optimizer step the summed losses, loss-token counts and summed gradients
are added up across the group (`all_sum`), and only then divided by the global token
count: the update is the one a single process makes on the whole global batch, so
results do not depend on how many processes ran the run.

Rank 0 owns the run: it prepares the data, reads checkpoints, and is the only one that
writes the run folder, events, checkpoints and adapters. It sends the config, the data
rows and (on resume) the weights, optimizer state and position to the others, so they
need the model on their machine but neither the data nor the run folder. A stop request
on any rank (RUN/STOP on rank 0, a signal anywhere) stops all ranks at the same step.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from localsft.errors import UserError
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


def train_in_group(group: Group, config=None, run_dir: str | Path | None = None, on_event=None, stop=None,
                   resume: bool = False):
    """`train()` as one process of `group`; every process calls it with its own arguments.

    Rank 0's config, run_dir and resume decide the run; the others' are ignored and they
    write nothing (their run folder is a name that is never created).
    Returns the TrainResult (rank 0's describes the run).
    """
    from localsft.runs.folder import RunFolder
    from localsft.train.config import TrainConfig
    from localsft.train.loop import train

    if group.size == 1:
        return train(config, run_dir, on_event, stop, resume)

    def main_config() -> dict:
        chosen = TrainConfig.load(RunFolder.open(run_dir).config_path) if resume else config
        return chosen.to_dict()

    shared = TrainConfig.from_dict(group.from_main(main_config))
    if group.is_main:
        return train(None if resume else shared, run_dir, on_event, stop, resume, group=group)
    unused = Path(tempfile.gettempdir()) / f"localsft-rank-{group.rank}-writes-nothing"
    return train(shared, unused, None, stop, False, group=group)


def read_hostfile(path: str | Path) -> list[dict]:
    """The hosts of an `mlx.launch` host file, checked for what the ring backend needs."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise UserError(f"Cannot read the host file {path}: {err.strerror}.") from None
    except json.JSONDecodeError as err:
        raise UserError(f"The host file {path} is not valid JSON: {err.msg} (line {err.lineno}).") from None
    hosts = data.get("hosts") if isinstance(data, dict) else data
    if not isinstance(hosts, list) or not hosts:
        raise UserError(f"The host file {path} lists no hosts; expected {{\"hosts\": [{{\"ssh\": ..., "
                        f"\"ips\": [...]}}, ...]}}.")
    for number, host in enumerate(hosts, 1):
        if not isinstance(host, dict) or not host.get("ssh") or not host.get("ips"):
            raise UserError(f"Host {number} in {path} needs \"ssh\" (a host name) and \"ips\" (its IP "
                            f"addresses: the ring backend connects by IP).")
    return hosts


def launch_command(hostfile: str | Path, train_args: list[str], port: int | None = None) -> list[str]:
    """The `mlx.launch` command that runs `localsft train <train_args>` on every host of `hostfile`."""
    read_hostfile(hostfile)
    launcher = Path(sys.executable).with_name("mlx.launch")
    if not launcher.exists():
        found = shutil.which("mlx.launch")
        if not found:
            raise UserError("mlx.launch was not found next to this Python; reinstall mlx.")
        launcher = Path(found)
    ports = ["--starting-port", str(port)] if port else []
    return [str(launcher), "--hostfile", str(Path(hostfile).expanduser()), "--backend", "ring", *ports,
            "--", sys.executable, "-m", "localsft", "train", *train_args]
