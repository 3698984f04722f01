"""The Export tab in real headless Chromium: two formats exported one after the other both stay listed
with their sizes and download over HTTP from the app; the card and the GGUF carry the run's friendly
name and no local paths. On the tiny random model (a few seconds per export).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from support.browser import browser_page, open_tab, running_app, shot
from support.platform import chromium
from support.runs import make_export_run

from localsft import paths
from localsft.runs.names import set_friendly_name

pytestmark = [pytest.mark.browser, pytest.mark.slow, chromium]

NAME = "Spring taglines"


@pytest.fixture
def page(localsft_home, tiny_model_dir):
    run = make_export_run(paths.runs_dir() / "20261130-0105-tiny-llama", tiny_model_dir)
    set_friendly_name(run, NAME)
    with running_app(localsft_home) as url, browser_page(url) as page:
        yield page


def test_every_export_stays_listed_and_downloads_with_the_friendly_name(page, tmp_path, tiny_model_dir):
    try:
        downloads = export_two_formats(page)
    except BaseException:
        shot(page, "export-failure")
        raise
    local = [str(Path.home()), "/tmp", str(tiny_model_dir.parent), str(paths.home())]
    for fmt, archive in downloads.items():
        card = archive.read("README.md").decode()
        assert card.splitlines()[card.splitlines().index("---", 1) + 2] == f"# {NAME}", card[:300]
        for path in local:
            assert path not in card, f"the {fmt} card names the local path {path}"
    from gguf import GGUFReader

    (gguf_name,) = [n for n in downloads["gguf"].namelist() if n.endswith(".gguf")]
    (tmp_path / gguf_name).write_bytes(downloads["gguf"].read(gguf_name))
    fields = GGUFReader(str(tmp_path / gguf_name)).fields
    assert fields["general.name"].contents() == NAME


def export_two_formats(page) -> dict[str, zipfile.ZipFile]:
    """Export peft, then gguf; returns each format's archive as downloaded from the page's links."""
    from playwright.sync_api import expect

    open_tab(page, "Export")
    expect(page.locator("#export-run input")).to_have_value(NAME)
    listing = page.locator("#export-listing")
    expect(listing).to_contain_text("No exports of this run yet")
    formats = page.locator("#export-formats")
    for fmt, count in (("peft", 1), ("gguf", 2)):
        for box in formats.locator("input[type=checkbox]").all():
            box.set_checked(box.evaluate("b => b.closest('label').textContent").strip().startswith(f"{fmt}:"))
        page.locator("#export-go").click()
        expect(listing.locator("tr")).to_have_count(count + 1, timeout=180_000)
        expect(page.locator("#export-files a[href]")).to_have_count(count, timeout=30_000)
    notes = page.locator("#export-notes")  # the card's "how to use" of the new export
    expect(notes).to_contain_text("ollama create spring-taglines -f Modelfile")
    for path in ("/tmp", str(Path.home())):
        expect(notes).not_to_contain_text(path)
    shot(page, "export-two-formats")

    page.reload()  # the list is rebuilt from the run folder, not kept in the page
    open_tab(page, "Export")
    expect(listing.locator("tr")).to_have_count(3, timeout=60_000)
    sizes = {}
    for row in listing.locator("tr").all()[1:]:
        cells = row.locator("td").all_inner_texts()
        sizes[cells[0].split(":")[0]] = cells[1]
    assert sorted(sizes) == ["gguf", "peft"] and all(re.fullmatch(r"\d+(\.\d)? [KM]B", s) for s in sizes.values())
    downloads = {}
    for link in page.locator("#export-files a[href]").all():
        href = link.get_attribute("href")
        assert unquote(href).rsplit("/", 1)[1].startswith(f"{NAME}-"), href  # the download's file name
        response = page.request.get(href)
        assert response.ok, f"{href}: {response.status}"
        body = response.body()
        fmt = next(f for f in sizes if re.search(rf"-{f}\.zip", href))
        assert _about(sizes[fmt], len(body)), f"{fmt}: listed as {sizes[fmt]}, downloaded {len(body)} bytes"
        downloads[fmt] = zipfile.ZipFile(io.BytesIO(body))
    assert sorted(downloads) == ["gguf", "peft"]
    return downloads


def _about(shown: str, size: int) -> bool:
    """Does "12 KB" / "3.4 MB" describe `size` bytes (to the figure shown)?"""
    number, unit = shown.split()
    scale = 2**20 if unit == "MB" else 1024
    step = 0.1 if "." in number else 1
    return abs(size / scale - float(number)) <= step
