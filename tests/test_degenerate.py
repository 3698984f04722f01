"""The check after training: looping, empty, identical and endless answers are caught and explained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from localsft.evaluation.degenerate import HEALTH_FILE, judge, looping
from localsft.train import train
from support.training import tiny_config

LOOP = "Hi,\n\n" * 30


def test_the_issue_s_looping_answers_are_flagged_with_a_fix():
    prompts = [f"question {i}" for i in range(4)]
    references = ["Thanks for writing, we will refund you.", "Your parcel ships today.",
                  "Sorry about the zip, here is a return label.", "Yes, it fits a 15-inch laptop."]
    health = judge(prompts, [LOOP] * 4, references, hit_limit=[True] * 4)
    assert not health.ok
    text = health.summary()
    assert "4 of 4 held-out answers repeat one piece of text" in text
    assert "same answer to different prompts" in text and "token limit" in text
    assert "Likely fix:" in text and "iters" in text


def test_good_answers_pass_even_when_short_labels_repeat():
    answers = ["positive", "negative", "positive", "question"]
    health = judge(["a", "b", "c", "d"], answers, list(answers), hit_limit=[False] * 4)
    assert health.ok and "look like real answers" in health.summary()
    labels = judge(["a", "b", "c"], ["positive"] * 3, ["positive"] * 3, [False] * 3)
    assert labels.ok  # the references agree, so one answer for all is right


def test_empty_answers_and_memorisation_get_their_own_fix():
    health = judge(["a", "b"], ["", "fine"], ["x", "y"], [False, False], final_loss=0.01)
    assert health.problems == ["1 of 2 held-out answers were empty."]
    assert "memorised" in health.fix


def test_a_repeated_list_in_the_reference_is_not_a_loop():
    reference = "- item\n- item\n- item\n- item\n"
    assert not looping(reference, reference) and looping(LOOP, "Thanks!")


def _loop_data(folder: Path) -> Path:
    """Training answers are one word said over and over; held-out answers are normal sentences."""
    rng = np.random.default_rng(0)
    words = ["fox", "dog", "capital", "Paris", "shoes", "fast", "light", "Berlin"]
    folder.mkdir(parents=True, exist_ok=True)

    def chat(answer):
        question = " ".join(rng.choice(words) for _ in range(rng.integers(3, 12)))
        return json.dumps({"messages": [{"role": "user", "content": question},
                                        {"role": "assistant", "content": answer(question)}]})

    (folder / "train.jsonl").write_text("\n".join(chat(lambda q: "fox " * 40) for _ in range(48)) + "\n")
    (folder / "valid.jsonl").write_text("\n".join(chat(lambda q: f"The answer is {q}.") for _ in range(6)) + "\n")
    return folder


def test_a_deliberately_looping_adapter_is_detected_after_training(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, _loop_data(tmp_path / "data"), epochs=4, learning_rate=5e-3,
                         max_seq_len=256, batch_tokens=512, pack_width=256)
    events = []
    result = train(config, tmp_path / "run", on_event=events.append)
    health = [e for e in events if e.type == "health"]
    assert len(health) == 1 and not health[0].ok
    assert "repeat one piece of text" in health[0].summary and "Likely fix" in health[0].summary
    assert [e.type for e in events][-1] == "finished"  # the check comes before the end of the run
    saved = json.loads((result.run_dir / HEALTH_FILE).read_text())
    assert saved["ok"] is False and all("repetition loop" in row["flags"] for row in saved["answers"])


def test_paraphrase_option_keeps_outputs_and_held_out_rows_real(tiny_model_dir, tmp_path):
    from localsft.train.augment import FILE, usable
    from support.training import make_data

    data = make_data(tmp_path / "data", n_train=20, n_valid=4)
    config = tiny_config(tiny_model_dir, data, epochs=1, augment_paraphrases=True)
    result = train(config, tmp_path / "run")
    rows = [json.loads(line) for line in (result.run_dir / "data" / FILE).read_text().splitlines()]
    originals = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    assert rows[:20] == originals  # the user's rows first, unchanged
    answers = {r["messages"][-1]["content"] for r in originals}
    assert all(r["messages"][-1]["content"] in answers for r in rows[20:])  # outputs stay the user's
    assert (result.run_dir / "data" / "valid.jsonl").read_text() == (data / "valid.jsonl").read_text()
    assert usable("Where is my parcel?", "Where's my order?") and not usable("", "Where's my order?")
    assert not usable("where's my order?", "Where's my order?")
