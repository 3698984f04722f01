"""The Use tab and the studio's own /v1 API in real headless Chromium, on a tiny model.

Upload a CSV, preview 5 answered rows, fill all as a background job and download the file,
reload and see it again; the Runs tab shows the API snippet, and the studio answers it.
"""

from __future__ import annotations

import csv
import json
import re
import urllib.request

import openai
import pytest
from serve_support import finished_run, store_model
from browser_support import CHROMIUM, CHROMIUM_ARGS, open_tab, running_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def app_url(localsft_home):
    """The studio in a child process (tests/browser_support.py)."""
    with running_app(localsft_home) as url:
        yield url


@pytest.fixture
def store(localsft_home, tiny_model_dir, tmp_path):
    """A tiny model in the store, a finished run on it, and a CSV to fill."""
    model = store_model(localsft_home, tiny_model_dir)
    finished_run(localsft_home, "shoes", model, seed=1)
    data = tmp_path / "products.csv"
    with open(data, "w", newline="") as fh:
        csv.writer(fh).writerows([["sku", "prompt"]] + [[f"S{i}", f"Write a tagline for shoe {i}."] for i in range(12)])
    return data


def test_fill_from_the_use_tab_and_call_the_run_through_the_studio_api(store, app_url):
    from playwright.sync_api import expect, sync_playwright

    url, data = app_url.rstrip("/"), store
    expect.set_options(timeout=120_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(url + "/")
        open_tab(page, "Use")
        page.locator("#use-upload input[type=file]").set_input_files(str(data))
        expect(page.locator("#use-file input")).to_have_value("products.csv")
        expect(page.locator("#use-target input")).to_have_value("shoes")
        page.locator("#use-preview").click()
        table = page.locator("#use-table")
        expect(table).to_contain_text("answer")
        expect(table).to_contain_text("S4")
        expect(table).not_to_contain_text("S5")  # 5 rows previewed
        page.locator("#use-fill").click()
        expect(page.locator('#use-progress[data-status="finished"]')).to_be_visible()
        expect(page.locator("#use-progress")).to_contain_text("12 of 12 rows")
        link = page.locator("#use-download a").first
        expect(link).to_have_attribute("href", re.compile(r"products\.filled\.csv$"))
        download = urllib.request.urlopen(link.get_attribute("href"), timeout=30).read().decode("utf-8-sig")
        assert download.splitlines()[0] == "sku,prompt,answer" and "S11," in download
        page.reload()
        open_tab(page, "Use")
        expect(page.locator('#use-progress[data-status="finished"]')).to_be_visible()  # re-attached
        open_tab(page, "Runs")
        snippet = page.locator("#runs-api")
        expect(snippet).to_contain_text('model="shoes"')
        expect(snippet).to_contain_text(f'base_url="{url}/v1"')
        browser.close()
    models = json.loads(urllib.request.urlopen(url + "/v1/models", timeout=30).read())
    assert [m["id"] for m in models["data"]][-1] == "shoes"
    client = openai.OpenAI(base_url=url + "/v1", api_key="not-needed", max_retries=0, timeout=120)
    reply = client.chat.completions.create(model="shoes", messages=[{"role": "user", "content": "Hello"}],
                                           max_tokens=8, temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "length")
