"""The whole studio flow in real headless Chromium (Playwright), on the real default model.

Starts `localsft ui` in a child process with its own home folder, then: upload a recipe's
CSV and see the report, train the default model for a few steps and watch loss points
appear, chat side by side, vote once, export a PEFT adapter and see its download link.
A screenshot of every tab lands in artifacts/ (git-ignored); with LOCALSFT_SCREENSHOTS=docs/screenshots
also in the docs.
"""

from __future__ import annotations

import re

import pytest
from browser_support import ROOT, browser_page, open_tab, running_app, shot

from localsft import paths

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A short run: quick-test recipe, 3 steps of small packed batches; no validation split (validating
# is what takes longest here; the validation curve is covered by tests/test_ui_tabs.py).
TRAINING = {"#train-iters input": "3",
            "#train-extra textarea": "max_seq_len=160\nbatch_tokens=320\npack_width=160\nvalid_fraction=0\n"
                                     "sample_prompts=0"}


@pytest.fixture
def page(localsft_home):
    with running_app(localsft_home) as url, browser_page(url) as page:
        yield page


def test_studio_flow(page):
    try:
        walk_through(page)
    except BaseException:
        shot(page, "failure")
        raise


def walk_through(page):
    from playwright.sync_api import expect

    # Data: upload a recipe's CSV, see the report and the preview.
    page.locator("#data-upload input[type=file]").set_input_files(str(ROOT / "recipes/data/brand_voice.csv"))
    expect(page.locator("#data-summary")).to_contain_text("220 kept", timeout=120_000)
    expect(page.locator("#data-chat")).to_contain_text("Ridgeline")
    shot(page, "data")

    # Train: the quick-test recipe, a few steps; loss points appear; it finishes.
    open_tab(page, "Train")
    page.locator("#train-recipe input").click()
    page.get_by_role("option", name="quick-test", exact=False).click()
    page.get_by_text("Advanced settings").click()
    for selector, value in TRAINING.items():
        page.locator(selector).fill(value)
    page.locator("#train-start").click()
    expect(page.locator("#train-message")).to_contain_text("Started run")
    expect(page.locator("#train-status")).to_contain_text(re.compile("Step [1-3] of 3|Failed"), timeout=180_000)
    assert "Failed" not in page.locator("#train-status").inner_text()
    page.reload()  # a new page re-attaches to the run
    open_tab(page, "Train")
    expect(page.locator("#train-progress")).to_have_attribute("data-status", re.compile("running|finished"))
    expect(page.locator("#train-progress")).to_have_attribute("data-status", "finished", timeout=180_000)
    expect(page.locator("#loss-chart")).to_contain_text("training")  # the legend: drawn only with points
    expect(page.locator("#train-start")).to_be_enabled(timeout=60_000)  # once the training process has ended
    expect(page.locator("#train-check")).to_be_visible()
    shot(page, "train")

    # Compare: a side-by-side answer from each model, then one blind vote.
    open_tab(page, "Compare")
    expect(page.locator("#compare-run input")).not_to_have_value("", timeout=30_000)
    page.locator("#compare-max-tokens input[type=number]").fill("16")
    page.locator("#compare-max-tokens input[type=number]").press("Enter")
    page.locator("#chat-input textarea").fill("Write a tagline for our new trail shoes.")
    page.locator("#chat-send").click()
    for pane in ("#chat-base", "#chat-tuned"):
        expect(page.locator(f"{pane} .bot").first).not_to_be_empty(timeout=120_000)
    page.locator("#ab-new").click()
    expect(page.locator("#vote-a")).to_be_enabled(timeout=120_000)
    page.locator("#vote-a").click()
    expect(page.locator("#ab-tally")).to_contain_text("of 1 votes")
    for pane in ("#chat-base", "#chat-tuned"):  # the streams ran to the end, no error badge
        expect(page.locator(pane)).not_to_contain_text("Error")
    expect(page.get_by_text("Something went wrong")).to_have_count(0)
    shot(page, "compare")

    # Export: a PEFT adapter, with its download link.
    open_tab(page, "Export")
    expect(page.locator("#export-run input")).not_to_have_value("", timeout=30_000)
    page.locator("#export-go").click()
    link = page.locator('#export-files a[href$="peft.zip"]')
    expect(link).to_be_visible(timeout=180_000)
    assert str(paths.home()) in link.get_attribute("href")  # served from inside the home folder
    download = page.request.get(link.get_attribute("href"))
    assert download.ok and download.body()[:2] == b"PK"  # a real zip
    shot(page, "export")

    # Runs: the run is listed as finished.
    open_tab(page, "Runs")
    expect(page.locator("#runs-table")).to_contain_text("finished")
    shot(page, "runs")
