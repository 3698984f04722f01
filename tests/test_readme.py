"""The README is true: its two commands, its folder tree, its Python API (run for real), no outside references."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def test_the_two_commands():
    quickstart = _section("Quickstart")
    assert "    bash .ci/setup && .venv/bin/localsft ui\n" in quickstart
    assert "    bash .ci/setup --test && .venv/bin/python -m pytest -q\n" in quickstart


def test_the_folder_tree_shows_every_package_and_only_real_folders():
    tree = _section("Project layout")
    named = re.findall(r"^ {4}( *)([\w.]+)/ ", tree, re.M)
    paths, parents = set(), []
    for indent, name in named:  # two spaces of indent per level
        parents = parents[:len(indent) // 2] + [name]
        paths.add("/".join(parents))
    assert all((ROOT / path).is_dir() for path in paths), sorted(p for p in paths if not (ROOT / p).is_dir())
    packages = {str(init.parent.relative_to(ROOT)) for init in (ROOT / "localsft").rglob("__init__.py")}
    assert packages - paths == set(), "add these folders to the README's tree"
    assert {"ui", "recipes", "tests", "benchmarks", "docs", ".ci"} <= paths


def test_nothing_points_outside_the_repository():
    files = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").glob("*.md"), *(ROOT / ".ci").iterdir()]
    for folder in ("localsft", "ui", "recipes", "tests", "benchmarks"):
        files += (ROOT / folder).rglob("*.py")
    outside = re.compile(r"PLATFORM\.md|\.\./shared|/work/(?:main|shared|wt)\b")
    hits = [f"{path.relative_to(ROOT)}:{n}" for path in files if path.is_file() and path != Path(__file__)
            for n, line in enumerate(path.read_text().splitlines(), 1) if outside.search(line)]
    assert hits == []


def test_every_docs_link_resolves():
    for path in [ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
            if not target.startswith("http"):
                assert (path.parent / target).exists(), f"{path.name} links to {target}"


@pytest.mark.slow
def test_the_python_api_example_runs(localsft_home):
    (code,) = re.findall(r"```python\n(.*?)```", _section("Python API"), re.S)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"\d+ examples; trainable: True", lines[0])
    assert {"started", "step", "finished"} <= set(lines)
    assert any(line.startswith("finished ") for line in lines)
    answers = lines[next(i for i, line in enumerate(lines) if line.startswith("finished ")) + 1:]
    assert {line.split(" ", 1)[0] for line in answers} == {"base", "tuned"}  # both sides answered
