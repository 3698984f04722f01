"""Start `localsft serve`'s app on loopback in this process, and build a store of runs for it."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

from support.runs import make_run


def finished_run(home: Path, name: str, model_dir: Path, seed: int, **changes) -> Path:
    """A run in the store with a random adapter and a `finished` event (what training leaves)."""
    run = make_run(home / "runs" / name, model_dir, seed=seed, **changes)
    now = time.time()
    events = [{"type": "started", "time": now, "steps": 1}, {"type": "finished", "time": now}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


def store_model(home: Path, model_dir: Path) -> Path:
    """Copy a model folder into the store (as `localsft models add` would)."""
    dest = home / "models" / model_dir.name
    shutil.copytree(model_dir, dest)
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """uvicorn on a thread; `url` is the base URL with /v1."""

    def __init__(self, app, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "Server":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
