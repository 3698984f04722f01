"""Support for the browser tests: the studio in a child process, headless Chromium, screenshots."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
# Set LOCALSFT_SCREENSHOTS=docs/screenshots to refresh the screenshots in the docs.
SCREENSHOTS = os.environ.get("LOCALSFT_SCREENSHOTS")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(home: Path):
    """`localsft ui` on a free port with `home` as its localsft home; yields its URL."""
    port = free_port()
    env = {**os.environ, "LOCALSFT_HOME": str(home), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(home / "ui.log", "wb")
    child = subprocess.Popen([sys.executable, "-m", "localsft", "ui", "--port", str(port)], cwd=ROOT, env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the app did not start:\n" + (home / "ui.log").read_text())
                time.sleep(0.5)
        yield url
    finally:
        child.terminate()
        child.wait(30)
        log.close()


@contextlib.contextmanager
def browser_page(url: str):
    """A Chromium page on `url` (1280 x 1000)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: bash .ci/setup --test installs it")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(url)
        try:
            yield page
        finally:
            browser.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def shot(page, name: str) -> None:
    """A full-page screenshot in artifacts/ (and in $LOCALSFT_SCREENSHOTS when set)."""
    page.screenshot(path=str(ARTIFACTS / f"studio-{name}.png"), full_page=True)
    if SCREENSHOTS and name != "failure":
        folder = ROOT / SCREENSHOTS
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
