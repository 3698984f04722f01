"""The files the studio writes for the browser: uploads/ (what users send) and downloads/ (what it offers).

Only downloads/ is served by path; everything else in the home folder stays private. Each
folder keeps a list of the files localsft wrote into it (name, size, time), so the clean-up of
old files removes only those, and only while they are unchanged: a file a user put there or
edited is never deleted.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from localsft import paths

WRITTEN = ".localsft-written.json"  # the list of files localsft wrote into the folder
KEEP_DAYS = 7
_lock = threading.Lock()


def downloads_dir() -> Path:
    """Files the app offers for download (export archives, filled files)."""
    folder = paths.home() / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _read(folder: Path) -> dict[str, list[float]]:
    try:
        written = json.loads((folder / WRITTEN).read_text())
        return written if isinstance(written, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(folder: Path, written: dict[str, list[float]]) -> None:
    tmp = folder / f"{WRITTEN}.tmp"
    tmp.write_text(json.dumps(written))
    os.replace(tmp, folder / WRITTEN)


def _stamp(path: Path) -> list[float]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime]


def keep(path: str | Path) -> Path:
    """Note that localsft just wrote `path` (a file directly in uploads/ or downloads/)."""
    path = Path(path)
    with _lock:
        written = _read(path.parent)
        written[path.name] = _stamp(path)
        _write(path.parent, written)
    return path


def remove_old(days: float = KEEP_DAYS, now: float | None = None) -> list[Path]:
    """Delete the files localsft wrote into uploads/ and downloads/ more than `days` ago and that are
    unchanged since; returns them."""
    cutoff = (now or time.time()) - days * 86400
    removed = []
    with _lock:
        for folder in (paths.uploads_dir(), downloads_dir()):
            written = _read(folder)
            for name, stamp in list(written.items()):
                path = folder / name
                if not path.is_file() or path.is_symlink() or Path(name).name != name:
                    written.pop(name)  # gone, or not something localsft wrote
                elif _stamp(path) == stamp and stamp[1] < cutoff:
                    path.unlink()
                    written.pop(name)
                    removed.append(path)
            if written or (folder / WRITTEN).exists():
                _write(folder, written)
    return removed
