"""`localsft eval`: base vs tuned on held-out data, written to eval.json / eval.md."""

from __future__ import annotations

import json
import math

import mlx.core as mx
import mlx_lm
import pytest
from support.runs import make_run
from mlx_lm.tuner.utils import load_adapters

from localsft.inference.switch import load_switchable
from localsft.cli import main
from localsft.inference.side_by_side import answer_sides
from localsft.data.template import tokenize_example
from localsft.errors import UserError
from localsft.evaluation.evaluate import evaluate_run, held_out_loss, read_examples
from localsft.inference.generate import SamplingSettings

SHORT = SamplingSettings(max_tokens=16)


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "eval-run", tiny_model_dir,
                    format_check={"regex": r"[^\n]*"})


@pytest.fixture(scope="module")
def switchable(tiny_run):
    return load_switchable(tiny_run)


def test_report_has_every_metric_for_both_sides_and_is_deterministic(tiny_run, switchable):
    report = evaluate_run(tiny_run, settings=SHORT, switchable=switchable)
    saved = json.loads((tiny_run / "eval.json").read_text())
    assert saved == json.loads(json.dumps(report.to_dict()))
    assert saved["examples"] == 3 and len(saved["items"]) == 3
    for side in ("base", "tuned"):
        scores = saved[side]
        assert scores["loss"] > 0 and scores["perplexity"] == pytest.approx(math.exp(scores["loss"]))
        assert 0 <= scores["exact_match"] <= 1 and 0 <= scores["chrf"] <= 100
        assert 0 <= scores["format_adherence"] <= 1 and 0 <= scores["probe_accuracy"] <= 1
    assert saved["base"]["loss"] != saved["tuned"]["loss"]
    item = saved["items"][1]
    assert item["reference"] == "Paris is the capital of France."
    assert item["prompt"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert len(saved["probes"]) >= 60 and {"base", "tuned", "base_correct"} <= saved["probes"][0].keys()
    again = evaluate_run(tiny_run, settings=SHORT, switchable=switchable)
    assert again.to_dict() == report.to_dict()
    markdown = (tiny_run / "eval.md").read_text()
    assert "| Validation loss |" in markdown and "Paris is the capital of France." in markdown


def test_loss_equals_the_models_own_loss_on_assistant_tokens(tiny_model_dir, tiny_run, switchable):
    examples = read_examples(tiny_run / "data" / "test.jsonl")
    tuned, tokenizer = mlx_lm.load(str(tiny_model_dir))
    load_adapters(tuned, str(tiny_run / "adapters" / "best"))
    total, count = 0.0, 0
    for example in examples:  # one example at a time, no padding
        tokens = tokenize_example(tokenizer, example)
        logits = tuned(mx.array([tokens.ids[:-1]]))[0]
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        for position, (target, counted) in enumerate(zip(tokens.ids[1:], tokens.loss_mask[1:])):
            if counted:
                total -= logprobs[position, target].item()
                count += 1
    assert held_out_loss(switchable, examples, tuned=True) == pytest.approx(total / count, rel=1e-4)


def test_exact_match_and_chrf_when_the_reference_is_the_tuned_answer(tiny_run, switchable, tmp_path):
    messages = [{"role": "user", "content": "Write a tagline for our running shoes."}]
    answers = answer_sides(switchable, messages, SHORT)
    data = tmp_path / "own.jsonl"
    data.write_text(json.dumps({"messages": messages + [{"role": "assistant", "content": answers["tuned"]}]}))
    report = evaluate_run(tiny_run, data=data, settings=SHORT, probes=False, switchable=switchable)
    assert report.tuned.exact_match == 1.0 and report.tuned.chrf == pytest.approx(100.0)
    assert report.base.exact_match == 0.0 and report.base.chrf < 100
    assert report.retention is None and report.probes == []


def test_bad_data_is_a_plain_error(tiny_run, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\nnot json\n')
    with pytest.raises(UserError, match="line 2"):
        evaluate_run(tiny_run, data=bad)
    with pytest.raises(UserError, match="No evaluation data"):
        evaluate_run(tiny_run, data=tmp_path / "missing.jsonl")


def test_eval_cli_prints_json_and_writes_the_report(tiny_run, capsys):
    assert main(["eval", str(tiny_run), "--json", "--no-probes", "--max-tokens", "8"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["examples"] == 3 and printed["retention"] is None
    assert main(["eval", str(tiny_run), "--no-probes", "--max-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "validation loss" in out and "eval.md" in out


def test_chat_cli_compare_shows_both_answers_under_labels(tiny_run, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("Hello\n/reset\nWhat is two plus two?\n"))
    assert main(["chat", str(tiny_run), "--compare", "--max-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert out.count("[base model]") == 2 and out.count("[tuned model]") == 2
    assert out.index("[base model]") < out.index("[tuned model]")
    assert "(conversation cleared)" in out


def test_a_probe_limit_spreads_over_the_categories(tiny_run, switchable):
    report = evaluate_run(tiny_run, settings=SHORT, switchable=switchable, probe_limit=10)
    assert len(report.probes) == 10
    assert len({row["category"] for row in report.probes}) == 5
