"""Run names: the folder name `localsft runs` prints, or a friendly name the user gave the run.

Every command that takes a run goes through `resolve_run`, so `localsft eval spring-taglines`,
`localsft eval 20261129-2231-SmolLM2` and `localsft eval ~/.localsft/runs/20261129-2231-SmolLM2`
all mean the same run. The friendly name lives in RUN/name.txt (one line, written by
`set_friendly_name`); the folder name never changes, so paths stay stable.
"""

from __future__ import annotations

from pathlib import Path

from localsft import paths
from localsft.errors import UserError
from localsft.runs.folder import atomic_write_text

NAME_FILE = "name.txt"
MAX_NAME = 60


def friendly_name(run_dir: str | Path) -> str | None:
    """The name the user gave this run, or None."""
    try:
        name = (Path(run_dir) / NAME_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None
    return name or None


def display_name(run_dir: str | Path) -> str:
    """What lists, exports and cards call the run: its friendly name, else its folder name."""
    return friendly_name(run_dir) or Path(run_dir).name


def set_friendly_name(run_dir: str | Path, name: str | None) -> str | None:
    """Give the run a friendly name (None or blank removes it); returns the name kept.

    Names are one line, at most 60 characters, and unique among the runs of the store.
    """
    run_dir = Path(run_dir)
    name = check_name(name, run_dir)
    if not name:
        (run_dir / NAME_FILE).unlink(missing_ok=True)
        return None
    atomic_write_text(run_dir / NAME_FILE, name + "\n")
    return name


def check_name(name: str | None, run_dir: Path | None = None) -> str:
    """The name as it will be kept (spaces collapsed; "" for none); UserError when it is too long or
    another run (than `run_dir`) already goes by it."""
    name = " ".join((name or "").split())
    if len(name) > MAX_NAME:
        raise UserError(f"A run name can have at most {MAX_NAME} characters; {name[:20]!r}... has {len(name)}.")
    for other in _run_folders() if name else []:
        if (run_dir is None or other.resolve() != run_dir.resolve()) and name.casefold() in (
                other.name.casefold(), (friendly_name(other) or "").casefold()):
            raise UserError(f"Another run is already called {name!r} ({other.name}); choose another name.")
    return name


def _run_folders() -> list[Path]:
    root = paths.runs_dir()
    return [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []


def resolve_run(text: str | Path) -> Path:
    """The run folder that `text` names: a path, a folder name in the runs store, or a friendly name."""
    raw = str(text or "").strip()
    if not raw:
        raise UserError("Name a run: `localsft runs` lists them.")
    given = Path(raw).expanduser()
    if given.is_dir() and ((given / "config.yaml").exists() or (given / "events.jsonl").exists()):
        return given
    if "/" not in raw and raw not in (".", "..") and (paths.runs_dir() / raw).is_dir():
        return paths.runs_dir() / raw
    matches = [p for p in _run_folders() if (friendly_name(p) or "").casefold() == raw.casefold()]
    if len(matches) == 1:
        return matches[0]
    if given.is_dir():
        return given  # not a run folder: the command says what is missing in it
    raise UserError(f"There is no run named {raw!r} (neither a folder nor a run name). "
                    f"`localsft runs` lists the runs in {paths.runs_dir()}.")
