"""The package's shape: every module imports on its own, and no two modules import each other."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Import name -> folder, as pyproject's package-dir installs them.
PACKAGES = {"localsft": ROOT / "localsft", "localsft_ui": ROOT / "ui"}


def _modules() -> dict[str, Path]:
    """Every module of the product by its import name (`__main__` runs the CLI: not a module to import)."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            if path.name == "__main__.py":
                continue
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The product modules `path` imports anywhere in it (deferred imports in functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from pkg import submodule` depends on the submodule only
                sub = f"{node.module}.{alias.name}"
                names.add(sub if sub in modules else node.module)
    return {name for name in names if name in modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_another_that_imports_it_back():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert graph["localsft.train.loop"], "the import graph was not read"
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_deferred_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


# Imported once in a fresh interpreter; each module is then imported in a forked copy of it,
# so each import starts with no product module loaded. The heavy libraries are loaded before
# the fork only to keep this fast. The library modules must not load gradio.
_IMPORT_EACH = """
import os, sys, traceback
import localsft.platform.blas  # noqa: the fast BLAS before mlx, as `import localsft` does
import mlx.core, mlx.nn, mlx_lm, numpy
if sys.argv[1] == "ui":
    import gradio
for name in sys.argv[2:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("localsft", "localsft_ui")]:
        del sys.modules[loaded]
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
            if sys.argv[1] == "library" and "gradio" in sys.modules:
                print(f"{name}: imports gradio", flush=True)
                os._exit(2)
        except BaseException:
            print(f"{name}: " + traceback.format_exc(), flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(f"{name} {os.waitstatus_to_exitcode(status)}", flush=True)
"""


def _import_each(kind: str, names: list[str]) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", _IMPORT_EACH, kind, *names], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    codes = dict(re.findall(r"^(\S+) (-?\d+)$", done.stdout, re.M))
    assert set(codes) == set(names), done.stdout + done.stderr
    failed = {name: code for name, code in codes.items() if code != "0"}
    assert not failed, done.stdout
    return codes


def test_every_library_module_imports_on_its_own_without_gradio():
    names = [name for name in _modules() if name.split(".")[0] == "localsft"]
    assert len(_import_each("library", names)) > 60


def test_every_studio_module_imports_on_its_own():
    names = [name for name in _modules() if name.split(".")[0] == "localsft_ui"]
    assert "localsft_ui.app" in _import_each("ui", names)
