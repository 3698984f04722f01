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
from pathlib import Path

from localsft.errors import UserError
from localsft.runs.folder import RunFolder
from localsft.train.config import TrainConfig
from localsft.train.group import SINGLE, Group, init  # noqa: F401  (the group API, used with this module)
from localsft.train.loop import train


def train_in_group(group: Group, config=None, run_dir: str | Path | None = None, on_event=None, stop=None,
                   resume: bool = False):
    """`train()` as one process of `group`; every process calls it with its own arguments.

    Rank 0's config, run_dir and resume decide the run; the others' are ignored and they
    write nothing (their run folder is a name that is never created).
    Returns the TrainResult (rank 0's describes the run).
    """
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
