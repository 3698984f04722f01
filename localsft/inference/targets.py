"""What answers: a base model from the store, or a finished run (its base plus its adapter).

`fill` and `serve` both take a name that may be either. A run is found by folder path or
by name in the runs store, a base model by store name or folder; a stored model wins
when a run has the same name (as in the list of targets). The readable id of a target is the run's or the model's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from localsft import paths
from localsft.errors import UserError
from localsft.runs.folder import RunFolder


@dataclass(frozen=True)
class Target:
    """One model that can answer: `adapter` is None for a base model."""

    id: str
    base: Path  # the base model's folder (shared by every run on it)
    adapter: Path | None = None
    run: RunFolder | None = None

    @cached_property
    def instructions(self) -> str | None:
        """The system prompt the run was trained under (RunFolder.instructions); None for a base model."""
        return self.run.instructions() if self.run else None

    def with_instructions(self, messages: list[dict]) -> list[dict]:
        """A chat led by the run's instructions when it brings no system message of its own: the
        tuned model learned its task under them (as an Ollama Modelfile's SYSTEM line does)."""
        from localsft.data.mapping import with_system

        return with_system(messages, self.instructions)

    @property
    def context_length(self) -> int:
        import json

        config = json.loads((self.base / "config.json").read_text())
        return int(config.get("max_position_embeddings") or 4096)


def _run_target(run: RunFolder) -> Target:
    from localsft.models.store import resolve_model

    return Target(run.name, resolve_model(run.model_name()).resolve(), run.best_adapter(), run)


def _find_run(name: str) -> RunFolder | None:
    candidates = [Path(name).expanduser()]
    if not (paths.models_dir() / name / "config.json").is_file():
        candidates.append(paths.runs_dir() / name)
    for candidate in candidates:
        if (candidate / "config.yaml").is_file():
            return RunFolder(candidate)
    return None


def resolve_target(name: str) -> Target:
    """The run or base model called `name` (folder path or store name), or a plain UserError."""
    from localsft.models.store import resolve_model

    run = _find_run(name)
    if run is not None:
        return _run_target(run)
    try:
        base = resolve_model(name)
    except UserError:
        runs = ", ".join(sorted(p.name for p in paths.runs_dir().iterdir() if (p / "config.yaml").exists()))
        raise UserError(f"No run or model called {name!r}. Runs: {runs or 'none yet'}. "
                        "Models: see `localsft models list`.") from None
    return Target(Path(base).name, Path(base).resolve())


def list_targets() -> list[Target]:
    """Every base model in the store and every finished run with an adapter, bases first."""
    from localsft.models.store import list_models
    from localsft.runs.status import list_runs

    targets = [Target(m.name, Path(m.path).resolve()) for m in list_models()]
    taken = {t.id for t in targets}
    for summary in list_runs():
        if summary.status != "finished" or summary.name in taken:
            continue
        try:
            targets.append(_run_target(RunFolder(summary.path)))
        except UserError:  # its base model is gone, or no adapter: not servable
            continue
    return targets
