"""The states a marketer could misread, checked in real headless Chromium (Playwright).

Each test would have caught one of the misleading states of issue 14: a rejected upload that
left the previous file's report, buttons that made no sense, a stale "Stopping…", a run still
training offered as if finished, a chat that silently remembered, an old A/B pair left on screen.
The runs are a tiny random model (fast); the data check reads the default model's tokenizer.
"""

from __future__ import annotations

import re

import pytest
from support.browser import ROOT, browser_page, open_tab, running_app, shot
from support.runs import make_run

from localsft import paths
from localsft.runs import jobs
from localsft.runs.names import set_friendly_name

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def page(localsft_home):
    with running_app(localsft_home) as url, browser_page(url) as page:
        yield page


def test_a_rejected_upload_leaves_nothing_of_the_previous_file(page, tmp_path):
    from playwright.sync_api import expect

    upload = page.locator("#data-upload input[type=file]")
    upload.set_input_files(str(ROOT / "recipes/data/brand_voice.csv"))
    expect(page.locator("#data-summary")).to_contain_text("220 kept", timeout=120_000)
    expect(page.locator("#data-chat")).to_contain_text("It learns to answer")  # the example as a chat
    expect(page.locator("#data-to-train")).to_be_enabled()

    # House style: previewed on the user's own answers.
    page.get_by_text("Your house style (optional)").click()
    page.locator("#style-ends textarea").fill(".")
    page.locator("#style-max input").fill("600")
    page.locator("#style-check").click()
    expect(page.locator("#style-preview")).to_contain_text(re.compile(r"\d+ of 220 of your answers follow"))
    shot(page, "data-house-style")

    bad = tmp_path / "export from the shop.csv"
    bad.write_text("alpha,beta,gamma\n1,2,3\n4,5,6\n")
    page.locator("#data-upload").get_by_role("button", name=re.compile("clear|remove", re.I)).first.click()
    upload.set_input_files(str(bad))
    summary = page.locator("#data-summary")
    expect(summary).to_contain_text("cannot be used yet")
    expect(summary).to_contain_text("Input column")
    expect(summary).not_to_contain_text("--input-col")
    expect(page.locator("#data-chat")).not_to_contain_text("Ridgeline")
    expect(page.locator("#data-problems")).not_to_contain_text("removed")
    expect(page.locator("#data-to-train")).to_be_disabled()
    for component in ("#data-summary", "#data-problems", "#data-chat", "#data-to-train"):
        expect(page.locator(component)).not_to_contain_text("Error")  # no red badges
    expect(page.get_by_text("Error", exact=True)).to_have_count(0)  # and no error pop-up
    expect(page.locator("#style-preview")).not_to_contain_text("of 220")  # nor the last file's house-style count
    shot(page, "data-rejected")


STOP_ANSWERED = """() => document.querySelector('#train-message').innerText.includes('Stopping')
    || document.querySelector('#train-progress[data-status="stopped"]') !== null"""


def test_buttons_follow_the_running_job_and_status_lines_never_go_stale(page, tiny_model_dir, localsft_home):
    from playwright.sync_api import expect

    data = paths.uploads_dir() / "spring taglines.csv"
    data.write_text("prompt,response\n" + "".join(f"Tagline {i}?,Go far {i}.\n" for i in range(60)))
    from localsft.train.config import TrainConfig

    job = jobs.start_training(TrainConfig(data=str(data), model=str(tiny_model_dir), iters=100000, compile=False,
                                          max_seq_len=64, batch_tokens=128, eval_every=3, sample_prompts=1,
                                          lora_alpha=16.0, learning_rate=1e-3, replay=0.0,
                                          early_stopping_patience=0))  # runs until the test stops it
    try:
        page.reload()  # a page opened while a training runs
        open_tab(page, "Train")
        expect(page.locator("#train-data")).to_contain_text("Training now")
        expect(page.locator("#train-data")).to_contain_text("spring taglines.csv")
        expect(page.locator("#train-start")).to_be_disabled(timeout=60_000)
        expect(page.locator("#train-resume")).to_be_disabled()
        expect(page.locator("#train-stop")).to_be_enabled()
        expect(page.locator("#train-eta")).to_contain_text("left", timeout=120_000)
        expect(page.locator("#loss-svg circle.point").first).to_be_attached()
        shot(page, "train-running")

        # Compare offers the run only as still training (it has a best adapter from its validations).
        expect(page.locator("#train-samples")).to_contain_text("Sample answers", timeout=120_000)
        open_tab(page, "Compare")
        expect(page.locator("#compare-run input")).to_have_value(re.compile(r"still training: step \d+ of 100000"))

        open_tab(page, "Train")
        page.locator("#train-stop").click()
        # "Stopping..." until the run has stopped; a tiny model stops within a step, so on a busy
        # machine the outcome may come first: either is the click's answer
        page.wait_for_function(STOP_ANSWERED, timeout=30_000)
        expect(page.locator("#train-progress")).to_have_attribute("data-status", "stopped", timeout=120_000)
        assert jobs.wait(job, 30)  # this test process started it, so it reaps it (as the app does its own)
        expect(page.locator("#train-message")).not_to_contain_text("Stopping")  # replaced by the outcome
        expect(page.locator("#train-resume")).to_be_enabled()
        expect(page.locator("#train-start")).to_be_enabled()
        expect(page.locator("#train-stop")).to_be_disabled()

        # The verdict card, then "Try it in Compare".
        page.locator("#train-check").click()
        expect(page.locator("#train-verdict #verdict-card")).to_be_visible(timeout=300_000)
        expect(page.locator("#train-verdict")).to_contain_text("How close to your examples")
        page.locator("#train-to-compare").click()
        expect(page.locator("#compare-run input")).to_have_value(re.compile(job.run_dir.name))
    finally:
        if jobs.stop_training(force=True):
            jobs.wait(job, 30)


def test_compare_answers_each_message_on_its_own_and_says_when_it_remembers(page, tiny_model_dir):
    from playwright.sync_api import expect

    run = make_run(paths.runs_dir() / "20261129-2231-tiny", tiny_model_dir)
    set_friendly_name(run, "Spring taglines")
    page.reload()
    open_tab(page, "Compare")
    expect(page.locator("#compare-run input")).to_have_value("Spring taglines")
    page.locator("#compare-max-tokens input[type=number]").fill("16")
    page.locator("#compare-max-tokens input[type=number]").press("Enter")
    expect(page.locator("#chat-mode")).to_contain_text("answered on its own")
    for text in ("Write a tagline.", "And another one."):
        page.locator("#chat-input textarea").fill(text)
        page.locator("#chat-send").click()
        expect(page.locator("#chat-input textarea")).to_have_value("", timeout=120_000)
    expect(page.locator("#chat-tuned .bot")).to_have_count(2, timeout=120_000)

    page.locator("#chat-conversation input").check()
    expect(page.locator("#chat-mode")).to_contain_text("see the earlier messages")
    expect(page.locator("#chat-tuned .bot")).to_have_count(0, timeout=30_000)  # a conversation starts fresh

    # The evaluation in plain words, technical scores behind Details, examples side by side.
    page.locator("#eval-go").click()
    expect(page.locator("#verdict-card")).to_be_visible(timeout=300_000)
    expect(page.locator("#eval-table")).to_contain_text("How close to your examples")
    expect(page.locator("#eval-examples")).to_contain_text("light, fast, yours.")
    expect(page.locator("#verdict-card")).not_to_contain_text("chrF")

    # Blind A/B: a new pair replaces the old one at once; answers and votes appear together.
    page.locator("#ab-new").click()
    expect(page.locator("#vote-a")).to_be_enabled(timeout=120_000)
    expect(page.locator("#ab-a textarea")).not_to_have_value("")
    page.locator("#ab-new").click()
    expect(page.locator("#ab-a")).to_be_hidden(timeout=5_000)  # the old pair is gone at once
    expect(page.locator("#vote-a")).to_be_enabled(timeout=120_000)
    expect(page.locator("#ab-b textarea")).not_to_have_value("")
    shot(page, "compare-evaluation")
