"""Replay: general requests answered by the base model are trained on next to the user's rows."""

from __future__ import annotations

import json

import pytest

from support.training import make_data, tiny_config

from localsft.evaluation.evaluate import load_probes
from localsft.models.loading import load_model
from localsft.train import train
from localsft.train.replay import (FILE, GENERAL_SYSTEM, answer_general, finished_answer, general_prompts,
                                  _cache_file, has_system_prompt, replay_count, replay_rows)


def test_the_general_requests_are_not_the_retention_probes():
    prompts = {p.casefold() for p in general_prompts()}
    assert len(prompts) >= 40
    assert not prompts & {probe["question"].casefold() for probe in load_probes()}


def test_a_quarter_of_the_rows_at_most_one_per_request():
    assert replay_count(40, 0.25, 48) == 10
    assert replay_count(400, 0.25, 48) == 48
    assert replay_count(40, 0.0, 48) == 0 and replay_count(0, 0.25, 48) == 0


def test_an_answer_cut_by_the_token_limit_ends_at_its_last_sentence():
    assert finished_answer("Sleep well. Keep a routine. Avoid scr", ended=False) == "Sleep well. Keep a routine."
    assert finished_answer("no sentence end at all and cut", ended=False) is None
    assert finished_answer("  A whole answer without a full stop ", ended=True) == "A whole answer without a full stop"
    assert finished_answer("   ", ended=True) is None


def known_answers(model_dir) -> None:
    """The tiny random model's own answers never end a sentence (so none is kept): give it
    answers through its replay cache, as a model that had answered them before."""
    cache = _cache_file(load_model(str(model_dir)))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("".join(json.dumps({"prompt": p, "answer": f"A plain answer to: {p}"}) + "\n"
                             for p in general_prompts()))


def test_a_run_trains_on_general_rows_marked_apart_from_the_task(tiny_model_dir, tmp_path, localsft_home):
    known_answers(tiny_model_dir)
    data = make_data(tmp_path / "data", n_train=40)  # the user's rows: no system prompt
    config = tiny_config(tiny_model_dir, data, epochs=1, replay=0.25)
    events = []
    train(config, tmp_path / "run", on_event=events.append)
    started = events[0]
    written = (tmp_path / "run" / "data" / FILE).read_text().splitlines()
    assert started.sizing["examples"] == 40 and started.sizing["replay"] == len(written) == 10
    for row in map(json.loads, written):
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][0]["content"] == GENERAL_SYSTEM
        assert row["messages"][1]["content"] in general_prompts()


def test_a_task_with_instructions_keeps_them_and_its_general_rows_carry_none(tiny_model_dir, tmp_path,
                                                                            localsft_home):
    task = [{"messages": [{"role": "system", "content": "Answer with one word."},
                          {"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": "Yes"}]}
            for i in range(8)]
    known_answers(tiny_model_dir)
    rows = replay_rows(task, load_model(str(tiny_model_dir)), tmp_path, share=0.5)
    assert len(rows) == 4 and all([m["role"] for m in row["messages"]] == ["user", "assistant"] for row in rows)
    assert not any(has_system_prompt(row) for row in rows) and all(has_system_prompt(row) for row in task)


def test_the_base_answers_are_made_once_per_model(tiny_model_dir, localsft_home):
    loaded = load_model(str(tiny_model_dir))
    prompts = general_prompts()[:3]
    first = answer_general(loaded, prompts)
    cache = list((localsft_home / "cache" / "replay").glob("*.jsonl"))
    assert len(cache) == 1 and len(cache[0].read_text().splitlines()) == 3
    assert answer_general(loaded, prompts) == first  # read back, not answered again
    assert len(cache[0].read_text().splitlines()) == 3
    answer_general(loaded, general_prompts()[:4])  # only the new request is answered
    assert len(cache[0].read_text().splitlines()) == 4


def test_a_run_from_before_replay_resumes_on_its_own_rows(tiny_model_dir, tmp_path, localsft_home):
    from localsft.runs.folder import RunFolder

    data = make_data(tmp_path / "data", n_train=40)
    run = tmp_path / "run"
    stopped = train(tiny_config(tiny_model_dir, data, epochs=2), run, stop=lambda: True)
    assert stopped.status == "stopped"
    config = RunFolder(run).config_path
    config.write_text("".join(line + "\n" for line in config.read_text().splitlines()
                              if not line.startswith("replay:")))  # as written before replay existed
    assert train(resume=True, run_dir=run).status == "finished"
    assert not (run / "data" / FILE).exists()


@pytest.mark.slow
def test_general_answers_made_in_one_batch_equal_those_made_one_by_one(default_model_dir):
    """Replay answers every prompt in one batch (cheaper a token than batches of 16): the real
    model's answers are the same as one at a time, prompts of every length padded together."""
    from localsft.train.format_watch import greedy_answers
    from localsft.train.replay import ANSWER_BATCH

    loaded = load_model(str(default_model_dir))
    chats = [[{"role": "user", "content": p}] for p in general_prompts()[:6]]
    alone = greedy_answers(loaded.model, loaded.tokenizer, chats, 16, batch_size=1)
    assert len(set(alone)) == len(chats) and ANSWER_BATCH >= len(general_prompts())
    assert greedy_answers(loaded.model, loaded.tokenizer, chats, 16, batch_size=ANSWER_BATCH) == alone
