"""What the studio accepts from a browser: names and numbers, never paths.

Any client can call any Gradio endpoint with any values (the widgets are no filter, and the
default loopback app has no login), so every handler that takes settings passes them through
here first. Examples come only from the user's uploads (the home's uploads/ folder) or the
app's own example sets; models are names in the store or Hub repo ids; settings that name files
or folders are refused. Refusals never echo a file's contents, and are checked before anything
is opened, so a refused value reads, copies and shows nothing.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from localsft import paths
from localsft.errors import UserError

# Training settings that name files or folders: chosen in the app's own controls instead.
PATH_SETTINGS = frozenset({"data", "model", "out", "resume", "run_dir", "adapter", "adapter_path",
                           "adapters", "resume_adapter_file", "output", "output_dir", "log_dir"})
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def examples_dir() -> Path:
    """The app's own example sets (shipped beside the recipes)."""
    from localsft.train.recipes import recipes_dir

    return recipes_dir() / "data"


def _short(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def data_file(path: str | Path | None) -> Path:
    """The examples file a handler may read: inside uploads/ or the example sets, symlinks resolved."""
    if not path:
        raise UserError("Upload a file, type some rows, or pick an example set first (Data tab).")
    real = Path(path).resolve()  # a link out of the folder counts where it points
    for root in (paths.uploads_dir(), examples_dir()):
        if real.is_relative_to(root.resolve()):
            if not real.is_file():
                raise UserError(f"The examples file {real.name!r} is gone; upload it again (Data tab).")
            return real
    raise UserError("The app trains only on files uploaded in the Data tab and on its own example sets; "
                    "it does not open other files on this machine.")


def example_set(name: str | None) -> Path:
    """One of the app's example sets, chosen by its name."""
    folder = examples_dir()
    names = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    if name not in names:
        raise UserError(f"There is no example set named {_short(name)}; choose one from the list.")
    return folder / name


def settings(items: list[str]) -> list[str]:
    """`key=value` training settings, refused when a key names files or is not a training setting."""
    from localsft.train.config import TrainConfig

    known = {f.name for f in fields(TrainConfig)} - PATH_SETTINGS
    for item in items:
        key = item.partition("=")[0].strip().replace("-", "_")
        if key.lower() in PATH_SETTINGS:
            raise UserError(f"The setting {key!r} names a file or folder, which the app does not take from "
                            f"settings: choose the examples in the Data tab and the model in the Model list.")
        if key not in known:
            raise UserError(f"Unknown setting {_short(key)}. Settings: {', '.join(sorted(known))}.")
    return items


def model_name(name: str | None) -> str | None:
    """A model of the store, by name (None: the default model)."""
    from localsft.models import list_models

    if not name or name == paths.DEFAULT_MODEL:
        return name or None
    if name not in {m.name for m in list_models()}:
        raise UserError(f"There is no model named {_short(name)} in the store; choose one from the Model list.")
    return name


def recipe_name(name: str | None) -> str | None:
    """A shipped recipe, by name (None: the trainer's defaults)."""
    from localsft.train.recipes import list_recipes

    if not name:
        return None
    if name not in {r.name for r in list_recipes()}:
        raise UserError(f"There is no recipe named {_short(name)}; choose one from the Recipe list.")
    return name


def hub_repo_id(source: str | None) -> str:
    """A Hugging Face repo id (user/model); folders and files on this machine are refused."""
    source = (source or "").strip()
    if not source:
        raise UserError("Type a Hugging Face repo id (user/model), or upload a .gguf file.")
    if not _HUB_ID.match(source) or ".." in source or Path(source).expanduser().exists():
        raise UserError(f"{_short(source)} is not a Hugging Face repo id (user/model). The app adds models "
                        f"from the Hub or from an uploaded .gguf file, not from folders on this machine "
                        f"(use `localsft models add FOLDER` for those).")
    return source


def run_folder(run_dir: str | Path | None) -> Path:
    """A run folder of the runs store."""
    if not run_dir:
        raise UserError("There is no run to resume yet: start one, or open one from the Runs tab.")
    real = Path(run_dir).resolve()
    if real.parent != paths.runs_dir().resolve() or not real.is_dir():
        raise UserError("That run is not in the runs store; open one from the Runs tab.")
    return real
