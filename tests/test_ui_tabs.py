"""The studio's handlers, called as Gradio calls them: data check, runs, compare, A/B, export, plain errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from support.runs import make_run
from localsft import paths
from localsft.errors import UserError
from localsft.train.recipes import load_recipe
from localsft_ui import compare_tab, data_tab, export_tab, runs_tab, settings_form, train_tab

EXAMPLES = Path(__file__).resolve().parent.parent / "recipes" / "data"


def test_upload_is_kept_inside_the_home_folder(tmp_path):
    outside = tmp_path / "my examples.csv"
    outside.write_text("prompt,response\nhi,hello\n")
    kept = Path(data_tab.use_upload(str(outside)))
    assert kept.parent == paths.uploads_dir() and kept.read_text() == outside.read_text()
    outside.write_text("prompt,response\nhi,changed\n")  # same name, other content: the first is kept too
    second = Path(data_tab.use_upload(str(outside)))
    assert second != kept and kept.read_text().endswith("hello\n")


def test_check_shows_report_problems_histogram_and_preview(tiny_model_dir):
    rows = "prompt,response\n" + "".join(f"Tagline {i}?,Light fast yours {i}.\n" for i in range(30)) + "empty,\n"
    path = paths.uploads_dir() / "taglines.csv"
    path.write_text(rows)
    out = data_tab.check_file(str(path), None, None, None, str(tiny_model_dir))
    report, data_file, summary, problems, histogram, input_col, output_col, _, row, chat, preview, to_train, _ = out
    assert report.rows_kept == 30 and data_file == str(path) and to_train["interactive"]
    assert "31 rows read, **30 kept**, 1 removed" in summary
    assert problems == [[32, "removed", problems[0][2]]] and "empty output" in problems[0][2]
    assert row["value"] == 2 and "Light fast yours 0." in chat and "&lt;|im_start|&gt;" not in chat
    bars = histogram["value"]
    assert bars["examples"].sum() == 30 and histogram["sort"] == list(bars["tokens"])  # shortest first
    assert (input_col["value"], output_col["value"]) == ("prompt", "response")
    learned = "".join(text for text, label in preview if label == "learned")
    assert "Light fast yours 0." in learned and "Tagline 0?" not in learned


def test_columns_chosen_by_hand_are_what_training_gets(tiny_model_dir):
    path = paths.uploads_dir() / "swap.csv"
    path.write_text("a,b\n" + "".join(f"question {i},answer {i}\n" for i in range(20)))
    out = data_tab.check_file(str(path), "b", "a", data_tab.NONE, str(tiny_model_dir))
    trained_on = Path(out[1])
    assert trained_on.parent == paths.uploads_dir() and trained_on.suffix == ".jsonl"
    first = json.loads(trained_on.read_text().splitlines()[0])
    assert first["messages"][0] == {"role": "user", "content": "answer 0"}


def test_typed_rows_become_a_csv(tiny_model_dir):
    table = pd.DataFrame([["Say hi", "Hello!"], ["", ""]], columns=["input", "output"])
    path = Path(data_tab.use_table(table))
    assert path.parent == paths.uploads_dir() and path.read_text().splitlines() == ["input,output", "Say hi,Hello!"]


def _uploaded(name: str = "x.csv") -> str:
    """A file as the Data tab keeps an upload (the app trains only on those)."""
    path = paths.uploads_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("prompt,response\nhi,hello\n")
    return str(path)


@pytest.mark.parametrize("call, message", [
    (lambda: data_tab.check_file(None, None, None, None, None), "Upload a file"),
    (lambda: data_tab.check_file("/nowhere/x.csv", None, None, None, None), "does not open other files"),
    (lambda: data_tab.use_table(pd.DataFrame([["", ""]], columns=["input", "output"])), "table is empty"),
    (lambda: train_tab.start(None, None, None), "Data tab"),
    (lambda: train_tab.stop(), "No training is running"),
    (lambda: train_tab.resume(None), "no run to resume"),
    (lambda: train_tab.start(_uploaded(), None, None, *settings_form.values(learning_rate=-1)),
     "learning_rate must be positive"),
    (lambda: train_tab.start(_uploaded(), None, None, *settings_form.values(epochs="3 epochs")),
     "epochs: expected a number"),
    (lambda: runs_tab.ask_delete("no-such-run"), "no run named"),
    (lambda: export_tab.export(None, ["peft"], "none"), "Choose a trained run"),
    (lambda: export_tab.push("r", "peft", "repo", "", True), "no run named"),
])
def test_errors_are_plain_sentences(call, message):
    with pytest.raises(gr.Error) as err:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    assert message in err.value.message and "Traceback" not in err.value.message


def test_advanced_settings_come_from_the_schema_and_never_name_files():
    from dataclasses import fields

    from localsft.train.config import TrainConfig
    from localsft_ui import settings_form

    offered = {f.name for f in settings_form.offered()}
    assert {"epochs", "iters", "learning_rate", "lora_rank", "packing", "lr_schedule", "system_prompt"} <= offered
    assert not offered & {"data", "model"}  # settings typed in the app never name files
    hidden = {f.name for f in fields(TrainConfig) if f.metadata.get("path") or f.metadata.get("preference")}
    assert {"data", "model", "parent_run", "preference_loss"} <= hidden  # files, and what "Improve" sets
    assert offered | hidden | {"lora_keys", "format_check"} == {f.name for f in fields(TrainConfig)}
    config = train_tab.build_config(None, None, "brand-voice", *settings_form.values(
        epochs=2, iters=20, learning_rate=1e-4, lora_rank=4, packing=False, lr_schedule="linear"))
    assert (config.epochs, config.iters, config.learning_rate, config.lora_rank, config.packing,
            config.lr_schedule) == (2, 20, 1e-4, 4, False, "linear")
    assert config.data and Path(config.data).exists()  # the recipe's own shipped example set
    recipe = train_tab.build_config(None, None, "brand-voice", *settings_form.values())
    assert recipe.learning_rate == load_recipe("brand-voice").train_config().learning_rate  # blank: the recipe's
    with pytest.raises(UserError, match="lora_rank must be at least 1"):
        train_tab.build_config(None, None, "brand-voice", *settings_form.values(lora_rank=0))
    with pytest.raises(UserError, match="epochs must be a finite number"):
        train_tab.build_config(None, None, "brand-voice", *settings_form.values(epochs=float("inf")))


def test_poll_renders_progress_chart_and_samples():
    folder = paths.runs_dir() / "r"
    folder.mkdir()
    events = [{"type": "started", "steps": 4, "est_seconds": 8},
              {"type": "step", "step": 1, "steps": 4, "loss": 3.0, "eta_s": 75, "tokens_per_s": 50},
              {"type": "eval", "step": 1, "val_loss": 2.9, "best_val_loss": 2.9, "improved": True},
              {"type": "sample", "step": 1, "samples": [{"prompt": "Tagline?", "answer": "Go far."}]}]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    run_dir, html, chart, samples, *_ = train_tab.poll(str(folder))
    assert run_dir == str(folder) and 'data-status="interrupted"' in html and "Step 1 of 4" in html
    assert chart.count('class="point training"') == 1 and chart.count('class="point validation"') == 1
    assert "Go far." in samples
    assert train_tab.poll(None)[0] is None
    assert train_tab.attach(None)[0] is None  # a new page: no run started from the app yet
    (folder / "train.log").write_text("")
    assert train_tab.attach(None)[0] == str(folder)  # a new page shows the latest run


@pytest.fixture
def run_name(tiny_model_dir):
    make_run(paths.runs_dir() / "tuned-run", tiny_model_dir)
    return "tuned-run"


def test_runs_tab_lists_opens_and_deletes(run_name):
    table, choice = runs_tab.refresh(None)
    assert table[0][:4] == [run_name, "", "tiny-llama", "interrupted"] and choice["value"] == run_name
    update, tabs = compare_tab.open(run_name)
    assert update["value"] == run_name and tabs.selected == "compare"
    assert export_tab.open(run_name)[1].selected == "export"
    confirm_row, question = runs_tab.ask_delete(run_name)
    assert confirm_row["visible"] and "cannot be undone" in question
    table, choice, _, message = runs_tab.confirm_delete(run_name)
    assert table == [] and choice["value"] is None and "Deleted" in message


def test_side_by_side_chat_streams_two_answers(run_name):
    steps = list(compare_tab.send("Write a tagline.", run_name, None, 16, 0))
    assert len(steps) > 2  # streamed
    base, tuned, session, box = steps[-1]
    assert base[0] == {"role": "user", "content": "Write a tagline."}
    # the message box empties when the answers start, and only then: a next message typed while
    # they stream stays (found on a busy machine: every streamed piece emptied the box again)
    assert steps[0][3] == "" and all(step[3] == gr.update() for step in steps[1:])
    assert base[1]["role"] == tuned[1]["role"] == "assistant" and base[1]["content"] != tuned[1]["content"]
    base2, _, same, _ = list(compare_tab.send("And another.", run_name, session, 8, 0))[-1]
    assert same is session and len(base2) == 4  # the loaded model is kept; the history grows
    assert compare_tab.clear(session)[:2] == ([], [])


def test_the_run_or_sides_set_again_keep_the_chat(run_name):
    # Found on a busy machine: the page's first "run chosen" event landed after the first answer
    # and emptied the chat, so the next message showed alone.
    base, tuned, session, _ = list(compare_tab.send("Write a tagline.", run_name, None, 8, 0))[-1]
    assert len(compare_tab.show_run(run_name)) == 13  # evaluation, votes, pair, sides, Improve: no chat
    keep = (gr.update(), gr.update(), gr.update())
    assert compare_tab.clear_if_moved("base", run_name, session) == keep  # the same pair again
    assert compare_tab.clear_if_moved("base", run_name, None) == keep  # no chat yet: nothing to empty
    assert compare_tab.clear_if_moved(run_name, run_name, session)[:2] == ([], [])  # another pair: empty
    assert session["shown"] == {"left": [], "right": []}


def test_chat_streams_when_each_token_is_pulled_from_another_thread(run_name):
    """Gradio advances a streaming handler from whichever pool thread is free."""
    from concurrent.futures import ThreadPoolExecutor

    stream = compare_tab.send("Write a tagline.", run_name, None, 16, 0)
    steps = []
    while True:
        with ThreadPoolExecutor(max_workers=1) as pool:  # a new thread for every token
            step = pool.submit(next, stream, None).result()
        if step is None:
            break
        steps.append(step)
    base, tuned, _, _ = steps[-1]
    assert len(steps) > 2 and base[1]["content"] and tuned[1]["content"]


def test_blind_vote_updates_the_win_rate(run_name):
    question, a, b, session, pair_box, *buttons = compare_tab.new_pair(run_name, None, 8, 0)
    assert pair_box["visible"]
    assert question and all(u["interactive"] for u in buttons)
    tally, session, *buttons = compare_tab.vote("tie", run_name, session)
    assert "1 votes" in tally and not any(u["interactive"] for u in buttons)
    votes = (paths.runs_dir() / run_name / "votes.jsonl").read_text().splitlines()
    assert len(votes) == 1 and json.loads(votes[0])["winner"] == "tie"
    with pytest.raises(gr.Error, match="one vote"):
        compare_tab.vote("A", run_name, session)


def test_export_peft_gives_a_download(run_name):
    files, _, notes = export_tab.export(run_name, ["peft"], "none")
    assert len(files) == 1 and files[0].endswith("peft.zip") and Path(files[0]).is_file()
    assert Path(files[0]).is_relative_to(paths.home()) and "peft" in notes
    with pytest.raises(gr.Error, match="USER/NAME"):
        export_tab.push(run_name, "peft", "no-slash", "hf_secret", True)


def test_hub_token_is_used_for_one_push_only(run_name, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(gr.Error) as err:
        export_tab.push(run_name, "adapter", "me/tuned", "hf_secret_123", True)
    assert "offline" in err.value.message and "hf_secret_123" not in err.value.message
    assert "HF_TOKEN" not in os.environ
    assert not any("hf_secret_123" in p.read_text(errors="ignore")
                   for p in paths.home().rglob("*") if p.is_file() and p.stat().st_size < 1 << 20)


def test_held_out_evaluation_table(run_name):
    card, rows, details, examples, session = compare_tab.evaluate(run_name, None, 8)
    assert rows[0][0] == "How close to your examples"  # (a random tiny model knows nothing to keep)
    assert all(row[3].endswith(".") for row in rows)  # one sentence of explanation each
    assert 'id="verdict-card"' in card and "chrF" not in card and "perplexity" not in card
    assert details[0][0].startswith("validation loss") and any("chrF" in row[0] for row in details)
    assert len(examples) == 3 and examples[0][1] == "light, fast, yours."  # your answer beside both models'
    assert compare_tab.saved_eval(run_name) == (card, rows, details, examples)  # shown again later
    assert session["run"] == run_name


def test_example_sets_and_added_models(tiny_model_dir):
    assert "brand_voice.csv" in data_tab.example_choices()
    assert Path(data_tab.use_example("brand_voice.csv")) == EXAMPLES / "brand_voice.csv"
    with pytest.raises(gr.Error, match="not from folders on this machine"):  # folders: CLI only
        train_tab.add_model(str(tiny_model_dir), None)
    assert train_tab.model_choices()[0] == paths.DEFAULT_MODEL


def test_task_recipes_bring_their_own_examples():
    assert train_tab.training_data(None, "brand-voice").endswith("brand_voice.csv")
    mine = paths.uploads_dir() / "mine.csv"
    mine.write_text("prompt,response\nhi,hello\n")
    assert train_tab.training_data(str(mine), "brand-voice") == str(mine)
    assert "brand-voice" in [name for _, name in train_tab.recipe_choices()]
    assert "minutes" in train_tab.recipe_info("brand-voice")
