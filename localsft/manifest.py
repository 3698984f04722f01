"""The files localsft wrote into a folder it shares with the user: only those are replaced or removed.

A folder of prepared splits or of an export keeps `.localsft-files.json`: each file
localsft wrote there, with its size and modification time. A file that is not listed,
or that changed since (the user edited or replaced it), is the user's: localsft refuses
to overwrite it and never deletes it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from localsft.errors import UserError

MANIFEST = ".localsft-files.json"


def writable_folder(folder: Path, what: str) -> Path:
    """Create `folder` (and its parents) or say plainly why it cannot be written to."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder: choose a folder for {what}.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a parent is a file
        raise UserError(f"{folder} cannot be created: part of the path is a file, not a folder.") from None
    except OSError as err:
        raise UserError(f"{folder} cannot be created for {what}: {err.strerror or err}.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{folder} is not writable: choose another folder for {what}.")
    return folder


def _stamp(path: Path) -> dict:
    st = path.lstat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Manifest:
    """What localsft wrote into one folder (read from and saved to folder/.localsft-files.json)."""

    def __init__(self, folder: Path, legacy: tuple[str, ...] = ()):
        self.folder = Path(folder)
        self.files: dict[str, dict] = {}
        path = self.folder / MANIFEST
        try:
            self.files = json.loads(path.read_text())["files"] if path.is_file() else {}
        except (OSError, ValueError, KeyError, TypeError):
            self.files = {}
        if not path.is_file():  # a folder written before manifests: these names are localsft's
            self.files = {name: _stamp(self.folder / name) for name in legacy if (self.folder / name).is_file()}

    def ours(self, name: str) -> bool:
        """Did localsft write folder/name, and is it unchanged since?"""
        path = self.folder / name
        return name in self.files and path.is_file() and not path.is_symlink() and _stamp(path) == self.files[name]

    def refuse_foreign(self, names) -> None:
        """UserError if writing these names would overwrite a file that is not localsft's."""
        for name in names:
            path = self.folder / name
            if (path.exists() or path.is_symlink()) and not self.ours(name):
                raise UserError(f"{path} was not written by localsft (or was changed since), so it is not "
                                "overwritten: move it away or choose another folder.")

    def remove_ours(self, keep: set[str] = frozenset()) -> list[str]:
        """Delete the files localsft wrote here (unchanged ones; not those in `keep`); returns their names."""
        removed = []
        for name in sorted(self.files):
            if name in keep:
                continue
            if self.ours(name):
                path = self.folder / name
                path.unlink()
                removed.append(name)
                parent = path.parent
                while parent != self.folder and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent
            del self.files[name]  # gone, or changed by the user: theirs now
        self.save()
        return removed

    def record(self, names) -> None:
        """Note these files (now on disk) as written by localsft, and save the manifest."""
        for name in names:
            self.files[name] = _stamp(self.folder / name)
        self.save()

    def save(self) -> None:
        tmp = self.folder / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps({"files": self.files}, indent=1, sort_keys=True))
        os.replace(tmp, self.folder / MANIFEST)


def move_in(partial: Path, folder: Path, manifest: Manifest) -> list[str]:
    """Move every file of `partial` into `folder` (replacing only localsft's own files); record them."""
    names = sorted(str(p.relative_to(partial)) for p in partial.rglob("*") if p.is_file())
    manifest.refuse_foreign(names)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial / name, folder / name)
    shutil.rmtree(partial, ignore_errors=True)
    manifest.record(names)
    return names
