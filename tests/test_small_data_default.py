"""The issue's case on the real default model: 40 examples, no settings, a usable model at the end."""

from __future__ import annotations

import json
import random

import pytest

from localsft import data
from localsft.evaluation.evaluate import load_probes
from localsft.evaluation.metrics import format_checker, probe_correct
from localsft.models.loading import load_model
from localsft.train import train
from localsft.train.format_watch import answer_budget, greedy_answers
from localsft.train.recipes import load_recipe

pytestmark = pytest.mark.slow


def test_forty_rows_with_no_settings_learn_the_format_and_do_not_degenerate(default_model_dir, tmp_path):
    recipe = load_recipe("fixed-format")
    loaded = load_model(str(default_model_dir))
    base = recipe.train_config()
    data.prepare(base.data, tmp_path / "all", tokenizer=loaded.tokenizer, system_prompt=base.system_prompt,
                 valid_fraction=0, test_fraction=0)
    lines = (tmp_path / "all" / "train.jsonl").read_text().splitlines()
    random.Random(1).shuffle(lines)
    folder = tmp_path / "forty"
    folder.mkdir()
    for name, part in (("train", lines[:40]), ("valid", lines[40:48]), ("test", lines[48:68])):
        (folder / f"{name}.jsonl").write_text("\n".join(part) + "\n")

    events = []
    result = train(base.replace(data=str(folder), model=str(default_model_dir)), tmp_path / "run",
                   on_event=events.append)
    started = events[0]
    assert started.sizing["examples"] == 40 and started.steps >= 60  # the old defaults gave 9 steps
    assert result.status in ("finished", "early_stopped")
    health = [e for e in events if e.type == "health"]
    assert health and health[0].ok, health[0].summary if health else "no check after training"

    # the picked adapter answers 20 prompts it never saw in the format, without loops
    from mlx_lm.tuner.utils import load_adapters

    tuned = load_model(str(default_model_dir))
    load_adapters(tuned.model, str(result.run_dir / "adapters" / "best"))
    tuned.model.eval()
    rows = [json.loads(line) for line in (folder / "test.jsonl").read_text().splitlines()]
    references = [r["messages"][-1]["content"] for r in rows]
    answers = greedy_answers(tuned.model, tuned.tokenizer, [r["messages"][:-1] for r in rows],
                             answer_budget(tuned.tokenizer, references))
    check = format_checker(base.format_check)
    assert sum(bool(check(a)) for a in answers) >= 18, answers  # >= 90%

    # it still answers general questions (replay): the shipped probes, tuned against base
    replayed = (result.run_dir / "data" / "replay.jsonl").read_text().splitlines()
    assert started.sizing["replay"] == len(replayed) == 10
    probes = load_probes()[::2]  # 35 of the 70, every category
    questions = [[{"role": "user", "content": p["question"]}] for p in probes]
    scores = {}
    for side, model in (("base", loaded), ("tuned", tuned)):
        said = greedy_answers(model.model, model.tokenizer, questions, 32)
        scores[side] = sum(probe_correct(a, p["answers"]) for a, p in zip(said, probes))
    # measured on all 70: 28 of the base's 39 (0.72); without replay the tuned model answered in JSON (0)
    assert scores["tuned"] >= 0.6 * scores["base"], scores
