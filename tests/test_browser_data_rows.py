"""The Data tab in real headless Chromium names rows as the user's spreadsheet does: a CSV whose
quoted cells hold line breaks, with a bad row after them, is reported by its spreadsheet row. Its
instructions field shows in the example and becomes the run's system prompt."""

from __future__ import annotations

import csv
import re

import pytest
from support.browser import browser_page, running_app, shot
from support.platform import chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow, chromium]


def test_the_report_and_the_preview_name_the_spreadsheet_row(localsft_home, tmp_path):
    from playwright.sync_api import expect

    path = tmp_path / "products.csv"  # rows 3 and 5 hold three-line answers; row 8 has no answer
    rows = [["prompt", "completion"]] + [[f"Product {i}", f"Answer {i}."] for i in range(12)]
    rows[2][1] = rows[4][1] = "First line.\nSecond line.\nThird line."
    rows[7][1] = ""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    with running_app(localsft_home) as url, browser_page(url) as page:
        try:
            page.locator("#data-upload input[type=file]").set_input_files(str(path))
            expect(page.locator("#data-summary")).to_contain_text("11 kept", timeout=120_000)
            problem = page.locator("#data-problems tbody tr").first
            expect(problem).to_contain_text(re.compile(r"^\s*8\s*removed\s*Row 8 \(file line 12\): empty output"))
            row = page.locator("#data-row input")
            row.fill("9")
            row.press("Enter")
            expect(page.locator("#data-chat")).to_contain_text("Answer 7.")  # row 9 holds the eighth example
            row.fill("8")
            row.press("Enter")
            expect(page.locator("#data-chat")).to_contain_text("Row 8 was removed")
            shot(page, "data-rows")
            # instructions typed on the Data tab: the example shows them first, and training gets them
            row.fill("2")
            row.press("Enter")
            expect(page.locator("#data-chat")).to_contain_text("Product 0")
            page.locator("#data-instructions textarea").fill("Write the product answer in one line.")
            expect(page.locator("#data-chat .bubble.system")).to_contain_text("Write the product answer in one line.")
            expect(page.locator("#data-chat .bubble.user")).to_contain_text("Product 0")
            page.locator("#data-to-train").click()
            page.get_by_text("Advanced settings (blank: the recipe's value)").click()
            expect(page.locator("#train-set-system_prompt textarea, #train-set-system_prompt input")).to_have_value(
                "Write the product answer in one line.")
            shot(page, "data-instructions")
        except BaseException:
            shot(page, "data-rows-failure")
            raise
