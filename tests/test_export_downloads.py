"""The Export tab's downloads are named after the run's friendly name, and one run's zip never
stands in for another's (names that read the same as a file name, a run renamed since)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from support.runs import make_export_run

from localsft import paths
from localsft.runs.names import set_friendly_name


def _names(files: list[str]) -> list[str]:
    return [Path(f).name for f in files]


def test_downloads_carry_the_friendly_name_and_never_another_runs_export(tiny_model_dir):
    from localsft_ui import export_tab

    first = make_export_run(paths.runs_dir() / "20261130-0100-tiny", tiny_model_dir)
    second = make_export_run(paths.runs_dir() / "20261130-0200-tiny", tiny_model_dir, seed=2)
    export_tab.export(second.name, ["adapter"], "none")
    set_friendly_name(first, "Spring/Summer taglines")
    files, _, _ = export_tab.export(first.name, ["adapter"], "none")
    assert _names(files) == ["Spring-Summer taglines-adapter.zip"]  # a slash cannot make a path
    assert (paths.home() / "downloads" / "Spring-Summer taglines-adapter.zip").is_file()

    # The first run is renamed; the second takes a name that reads the same as a file name. Its export
    # is older than the first run's zip of that name, which must not be offered as its own.
    set_friendly_name(first, "Old taglines")
    set_friendly_name(second, "Spring-Summer taglines")
    files, _ = export_tab.finished_exports(second.name)
    assert _names(files) == ["Spring-Summer taglines-adapter.zip"]
    with zipfile.ZipFile(files[0]) as made:
        weights = made.read("adapters.safetensors")
    assert weights == (second / "exports" / "adapter" / "adapters.safetensors").read_bytes()
    assert weights != (first / "exports" / "adapter" / "adapters.safetensors").read_bytes()
    assert _names(export_tab.finished_exports(first.name)[0]) == ["Old taglines-adapter.zip"]

    set_friendly_name(first, "Spring/Summer taglines!")  # both read "Spring-Summer taglines": folder names
    assert _names(export_tab.finished_exports(first.name)[0]) == [f"{first.name}-adapter.zip"]
    assert _names(export_tab.finished_exports(second.name)[0]) == [f"{second.name}-adapter.zip"]
