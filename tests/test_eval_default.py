"""Eval on a real short training run of the default model produces a sensible report."""

from __future__ import annotations

import json

import pytest
import yaml

from localsft.evaluation.evaluate import evaluate_run
from localsft.inference.generate import SamplingSettings
from localsft.train import TrainConfig, train

pytestmark = pytest.mark.slow
RECIPES = __import__("pathlib").Path(__file__).parent.parent / "recipes"


@pytest.fixture(scope="module")
def trained_run(default_model_dir, tmp_path_factory):
    """A few LoRA steps of the fixed-format recipe (JSON answers) on 60 of its examples."""
    recipe = yaml.safe_load((RECIPES / "fixed-format.yaml").read_text())
    folder = tmp_path_factory.mktemp("fixed")
    lines = (RECIPES / "data" / "fixed_format.csv").read_text().splitlines()
    (folder / "data.csv").write_text("\n".join(lines[:61]) + "\n")
    config = TrainConfig(model=str(default_model_dir), data=str(folder / "data.csv"),
                         system_prompt=recipe["system_prompt"], format_check=recipe["format_check"],
                         iters=4, batch_tokens=256, max_seq_len=256, learning_rate=2e-3, lora_layers=8,
                         eval_every=4, early_stopping_patience=0, sample_prompts=0, lora_alpha=16.0,
                         warmup_ratio=0.05, replay=0.0)
    result = train(config, folder / "run")
    assert result.status == "finished"
    return result.run_dir


def test_eval_of_a_short_real_run_is_sensible(trained_run):
    report = evaluate_run(trained_run, settings=SamplingSettings(max_tokens=32), probe_limit=10)
    saved = json.loads((trained_run / "eval.json").read_text())
    assert saved["examples"] == len((trained_run / "data" / "test.jsonl").read_text().splitlines())
    assert report.tuned.loss < report.base.loss  # it learned the task
    assert report.tuned.format_adherence >= report.base.format_adherence
    assert report.base.probe_accuracy >= 0.3  # the default model knows easy facts
    # forgetting shows as a number (a few steps of JSON-only answers can cost a lot of it)
    assert report.retention == pytest.approx(report.tuned.probe_accuracy / report.base.probe_accuracy)
    markdown = (trained_run / "eval.md").read_text()
    assert "Retention" in markdown and "| Format adherence |" in markdown
