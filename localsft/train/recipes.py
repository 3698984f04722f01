"""Recipes: presets and task recipes shipped as YAML in `recipes/`.

A recipe is a partial TrainConfig plus a one-line `description` and a `time_hint`.
Its `data` path is relative to the recipe file (e.g. `data/brand_voice.csv`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from localsft.errors import UserError
from localsft.train.config import TrainConfig

META_KEYS = ("description", "time_hint")


def recipes_dir() -> Path:
    """The shipped recipes folder: the repository's `recipes/`, installed as package data."""
    return Path(str(resources.files("localsft_recipes")))


@dataclass
class Recipe:
    name: str
    path: Path
    description: str
    time_hint: str
    settings: dict = field(default_factory=dict)

    def train_config(self) -> TrainConfig:
        """The recipe's settings over the defaults, with its data path made absolute."""
        settings = dict(self.settings)
        if settings.get("data"):
            settings["data"] = str((self.path.parent / settings["data"]).resolve())
        return TrainConfig.from_dict(settings)


def read_recipe(path: Path) -> Recipe:
    """Read and validate one recipe file."""
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"Cannot read recipe {path}: {err}") from None
    if not isinstance(values, dict):
        raise UserError(f"Recipe {path} must be a mapping of settings.")
    missing = [k for k in META_KEYS if not values.get(k)]
    if missing:
        raise UserError(f"Recipe {path} lacks {' and '.join(missing)}.")
    settings = {k: v for k, v in values.items() if k not in META_KEYS}
    recipe = Recipe(path.stem, path, str(values["description"]), str(values["time_hint"]), settings)
    recipe.train_config()  # validates every setting
    return recipe


def list_recipes() -> list[Recipe]:
    """Every shipped recipe, presets first then tasks, by name."""
    return sorted((read_recipe(p) for p in recipes_dir().glob("*.yaml")),
                  key=lambda r: (bool(r.settings.get("data")), r.name))


def load_recipe(name_or_file: str) -> Recipe:
    """A shipped recipe by name, or a recipe YAML file."""
    path = Path(name_or_file).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return read_recipe(path)
    shipped = recipes_dir() / f"{name_or_file}.yaml"
    if shipped.is_file():
        return read_recipe(shipped)
    known = ", ".join(r.name for r in list_recipes())
    raise UserError(f"Unknown recipe: {name_or_file}. Recipes: {known}.")
