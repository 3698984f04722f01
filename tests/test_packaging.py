"""A normal install ships the whole product: every package, the recipes, example sets, probes, the studio."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from localsft.cli import main

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
# Installed name -> folder in the repository (pyproject's package-dir; others install as they are).
FOLDERS = {"localsft": ROOT / "localsft", **{name: ROOT / folder for name, folder in PYPROJECT["package-dir"].items()}}
SKIPPED = ("__pycache__", ".pyc")


def _shipped_files() -> dict[str, Path]:
    """Every file the wheel must hold, by its path inside the wheel."""
    files = {}
    for name, folder in FOLDERS.items():
        for path in folder.rglob("*"):
            if path.is_file() and not any(part.endswith(SKIPPED) for part in path.parts):
                files[f"{name}/{path.relative_to(folder).as_posix()}"] = path
    return files


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(PYPROJECT["packages"])
    found = set()
    for name, folder in FOLDERS.items():
        for init in folder.rglob("__init__.py"):
            found.add(".".join([name, *init.parent.relative_to(folder).parts]))
    assert {"localsft", "localsft.models", "localsft_ui", "localsft_recipes"} <= found
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "listed packages without a folder"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel `pip wheel` builds from a clean copy of the sources (no network, no install)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "tests", "benchmarks"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(tmp / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (path,) = (tmp / "dist").glob("localsft-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_every_module_recipe_example_set_probe_and_the_studio(wheel):
    names = set(wheel.namelist())
    shipped = _shipped_files()
    assert {"localsft_recipes/balanced.yaml", "localsft_recipes/data/brand_voice.csv",
            "localsft/evaluation/probes/general.jsonl", "localsft_ui/app.py"} <= set(shipped)
    assert sorted(set(shipped) - names) == []
    entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "localsft = localsft.cli:main" in entry_points
    assert not [n for n in names if n.split("/")[0] == "ui"], "the studio must not install as a bare `ui`"


def test_recipes_command_says_plainly_when_no_recipe_is_installed(monkeypatch, tmp_path, capsys):
    import localsft.train.recipes as recipes

    monkeypatch.setattr(recipes, "recipes_dir", lambda: tmp_path)
    assert main(["recipes"]) == 2
    err = capsys.readouterr().err
    assert f"No recipes found in {tmp_path}" in err and "Traceback" not in err
