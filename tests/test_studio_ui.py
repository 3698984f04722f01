"""The studio's words and states, called as Gradio calls the handlers (the browser tests drive the same)."""

from __future__ import annotations

import json
import time

import pytest
from support.runs import make_run

from localsft import paths
from localsft.runs import jobs
from localsft.runs.status import Progress, read_progress
from localsft.runs.names import set_friendly_name
from localsft_ui import common, compare_tab, data_tab, eta, house_style, loss_chart, train_status


def step_events(seconds: list[float], steps: int, start: float = 1000.0, est: float = 60.0) -> list[dict]:
    """A started event and one step event after each duration in `seconds`."""
    events = [{"type": "started", "steps": steps, "est_seconds": est, "valid_examples": 10, "time": start}]
    now = start
    for i, took in enumerate(seconds, 1):
        now += took
        events.append({"type": "step", "step": i, "steps": steps, "eta_s": 0, "time": now})
    return events


def test_time_left_is_smoothed_and_a_range_at_first():
    # steps of ~2 s, a validation every 5 steps (an 8 s step); the trainer's own figure jumped 2-3x here
    durations = [9 if i % 5 == 0 else 2 for i in range(1, 31)]
    events = step_events(durations, steps=30)
    totals = [e["time"] - 1000 + eta.estimate(events[:i + 1], now=e["time"]).seconds
              for i, e in enumerate(events) if e["type"] == "step"]
    steady = totals[eta.RANGE_UNTIL:]
    assert all(0.75 < b / a < 1.33 for a, b in zip(steady, steady[1:])), totals
    true_left = events[-1]["time"] - events[3]["time"]
    early = eta.estimate(events[:4], now=events[3]["time"])  # a range while few steps are measured
    assert early.low < true_left < early.high and "-" in early.describe(), (early, true_left)
    later = eta.estimate(events[:20], now=events[19]["time"])
    assert later.low is None and later.describe().startswith("about ")


def test_time_left_keeps_moving_while_validating_and_saving():
    events = step_events([2.0] * 10, steps=20)
    last = events[-1]["time"]
    during = eta.estimate(events, now=last + 6)
    assert during.phase == "checking progress…" and "checking progress…" in during.describe()
    assert during.seconds < eta.estimate(events, now=last).seconds  # still counting down
    at_end = step_events([2.0] * 20, steps=20) + [{"type": "eval", "step": 20, "time": 1045.0}]
    assert eta.estimate(at_end, now=1050.0).phase == "saving…"


def test_loss_chart_shows_the_first_point_whole_steps_and_nothing_before():
    assert loss_chart.chart_svg({"training": [], "validation": []}, 30) == ""  # no empty axes
    svg = loss_chart.chart_svg({"training": [(1, 2.5)], "validation": []}, 30)
    assert svg.count('class="point training"') == 1
    ticks = [t.split(">")[1].split("<")[0] for t in svg.split('class="x-tick"')[1:]]
    assert ticks == ["0", "5", "10", "15", "20", "25", "30"]
    assert loss_chart._step_ticks(3) == [0, 1, 2, 3]
    assert loss_chart._step_ticks(100_000)[:3] == [0, 10_000, 20_000] and loss_chart._step_ticks(45)[-1] == 45


def test_sample_answers_keep_their_line_breaks():
    p = Progress(paths.runs_dir() / "r", samples=[{"prompt": "Two lines?", "answer": "First line\nSecond <b>"}])
    shown = train_status.samples_html(p)
    assert "white-space:pre-wrap" in shown and "First line\nSecond &lt;b&gt;" in shown


def test_a_rejected_upload_clears_the_previous_file(tiny_model_dir):
    good = paths.uploads_dir() / "good.csv"
    good.write_text("prompt,response\n" + "".join(f"Tagline {i}?,Go far {i}.\n" for i in range(20)))
    first = data_tab.check_file(str(good), None, None, None, str(tiny_model_dir))
    assert first[1] == str(good) and first[11]["interactive"]
    bad = paths.uploads_dir() / "bad.csv"
    bad.write_text("alpha,beta,gamma\n1,2,3\n")
    report, data_file, summary, problems, histogram, inp, out, system, row, chat, preview, to_train, style = \
        data_tab.check_file(str(bad), None, None, None, str(tiny_model_dir))
    assert report is None and data_file is None and problems == [] and chat == "" and preview == []
    assert histogram["value"] is None and not to_train["interactive"] and style == ""
    assert "bad.csv cannot be used yet" in summary and "--input-col" not in summary
    assert "Input column" in summary and inp["choices"] == [data_tab.NONE, "alpha", "beta", "gamma"]


def test_rows_are_the_spreadsheet_rows(tiny_model_dir):
    path = paths.uploads_dir() / "rows.csv"
    path.write_text("prompt,response\nA?,a.\nB?,\nC?,c.\nA?,a.\n")  # row 3: empty answer, row 5: duplicate
    report, *_ = data_tab.check_file(str(path), None, None, None, str(tiny_model_dir))
    assert [r[:2] for r in data_tab.problems_rows(report)] == [[3, "removed"], [5, "removed"]]
    assert "C?" in data_tab.preview_chat(report, 4)
    assert "Row 3 was removed" in data_tab.preview_chat(report, 3)


def test_house_style_preview_counts_the_users_own_answers(tiny_model_dir):
    path = paths.uploads_dir() / "mails.csv"
    path.write_text("prompt,response\nSale?,Subject: Sale\nNews?,Subject: News\nHi?,Hello there\n")
    report, *_ = data_tab.check_file(str(path), None, None, None, str(tiny_model_dir))
    spec, shown = house_style.check_style(report, "Subject:", "", "", None, "")
    assert spec == {"starts_with": "Subject:"} and "2 of 3 of your answers" in shown and "Row 4" in shown
    assert house_style.quiet_spec("", "", "", None, "(") is None  # an unfinished pattern counts as none


@pytest.fixture
def run_name(tiny_model_dir):
    make_run(paths.runs_dir() / "tuned-run", tiny_model_dir)
    return "tuned-run"


def test_compare_answers_each_message_on_its_own_unless_conversation(run_name):
    *_, session, _ = list(compare_tab.send("Write a tagline.", run_name, None, 8, 0))[-1]
    base, tuned, session, _ = list(compare_tab.send("And another.", run_name, session, 8, 0))[-1]
    assert len(base) == len(tuned) == 4  # both exchanges stay listed...
    assert [m["content"] for m in session["panes"].history["right"] if m["role"] == "user"] == ["And another."]
    base, tuned, session = compare_tab.clear(session)  # what turning Conversation on does, after any answer streaming
    assert base == tuned == [] and "see the earlier messages" in compare_tab.mode_line(True)
    for text in ("My name is Ada.", "What is my name?"):
        *_, session, _ = list(compare_tab.send(text, run_name, session, 8, 0, True))[-1]
    users = [m["content"] for m in session["panes"].history["right"] if m["role"] == "user"]
    assert users == ["My name is Ada.", "What is my name?"]  # ...but only a conversation sees earlier turns


def test_new_pair_clears_the_old_one_at_once():
    question, a, b, box = compare_tab.clear_pair()
    assert (question, a, b) == ("", "", "") and box["visible"] is False


def test_a_run_still_training_is_offered_only_as_such(run_name, tiny_model_dir, monkeypatch):
    set_friendly_name(paths.runs_dir() / run_name, "Spring taglines")
    folder = paths.runs_dir() / run_name
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in [
        {"type": "started", "steps": 30, "time": time.time()},
        {"type": "step", "step": 12, "steps": 30, "loss": 2.0, "time": time.time()}]))
    from localsft.runs.lock import lock_run

    with lock_run(folder, "training"):  # what the trainer holds while it trains
        assert common.finished_run_choices() == [("Spring taglines (still training: step 12 of 30)", run_name)]


def test_a_named_run_and_its_exports_stay_listed_with_their_sizes(run_name):
    from localsft_ui import export_tab, runs_tab

    table, choices, message = runs_tab.rename(run_name, "Spring taglines")
    assert table[0][1] == "Spring taglines" and choices["choices"] == [("Spring taglines", run_name)]
    assert common.finished_run_choices() == [("Spring taglines", run_name)]
    assert export_tab.finished_exports(run_name) == ([], "No exports of this run yet.")
    files, listing, notes = export_tab.export(run_name, ["peft"], "none")
    files, listing, notes = export_tab.export(run_name, ["adapter"], "none")  # the next export...
    assert [f.rsplit("/", 1)[1] for f in files] == ["Spring taglines-adapter.zip",
                                                    "Spring taglines-peft.zip"]  # ...keeps the first
    assert listing.count("<tr>") == 3 and "KB" in listing
    card = (paths.runs_dir() / run_name / "exports" / "peft" / "README.md").read_text()
    assert "\n# Spring taglines\n" in card and str(paths.home()) not in card
    assert 'PeftModel.from_pretrained(base, ".")' in card


def test_a_finished_training_still_exiting_offers_no_button():
    folder = paths.runs_dir() / "r"
    job = jobs.Job(1, folder, time.time())
    done = Progress(folder, status="finished")
    assert not any(u["interactive"] for u in train_status.buttons(done, job))
    assert "Finishing" in train_status.data_note(None, job, closing=True)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("data: /somewhere/brand_voice.csv\n")
    assert "the run below trained on `brand_voice.csv`" in train_status.data_note(None, None, shown_run=folder)
    start, stop, resume = train_status.buttons(Progress(folder, status="stopped"), None)
    assert start["interactive"] and not stop["interactive"] and resume["interactive"]


def test_check_the_result_gives_the_verdict_card(run_name):
    from localsft_ui import train_tab

    card = train_tab.check_result(str(paths.runs_dir() / run_name))
    assert 'id="verdict-card"' in card and "How close to your examples" in card
    assert (paths.runs_dir() / run_name / "eval.json").exists()  # kept: Compare shows it too
    folder = paths.runs_dir() / run_name
    (folder / "events.jsonl").write_text(json.dumps({"type": "finished", "step": 3, "time": time.time()}) + "\n")
    shown, check, to_compare = train_status.result_area(read_progress(folder), False)
    assert shown == card and check["visible"] and to_compare["visible"]


def test_a_name_already_taken_is_refused_before_anything_starts(run_name):
    import gradio as gr

    from localsft_ui import train_tab

    set_friendly_name(paths.runs_dir() / run_name, "Spring taglines")
    with pytest.raises(gr.Error, match=r"already called 'spring taglines' \(tuned-run\)"):
        train_tab.start("x.csv", None, None, None, None, None, None, None, "", name="spring taglines")
    assert jobs.current_job() is None


def test_recipe_jargon_stays_behind_details():
    from localsft_ui import train_tab

    balanced = train_tab.recipe_info("balanced")
    assert balanced.index("LoRA on every layer") > balanced.index("<summary>Details</summary>")
    assert "<details>" not in train_tab.recipe_info("brand-voice") and "house voice" in train_tab.recipe_info("brand-voice")
