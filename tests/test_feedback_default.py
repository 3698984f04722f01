"""The feedback loop on the real default model: a preference the parent's data never states is learned.

Among otherwise equal answers (the parent's own greedy taglines), the chosen ones end with a
sign-off line and the rejected ones do not. After a preference run with the default settings,
more held-out answers carry the sign-off, held-out preference accuracy is high, and general
knowledge (probe questions) stays within a couple of questions of the parent's.
"""

from __future__ import annotations

import pytest

from localsft.evaluation.evaluate import run_probes
from localsft.evaluation.report import SideScores
from localsft.feedback import PreferencePair
from localsft.inference.generate import SamplingSettings
from localsft.inference.side_by_side import answer_many
from localsft.inference.switch import load_switchable
from localsft.runs.folder import RunFolder
from localsft.train.preference import preference_config, split_pairs, train_preferences

pytestmark = pytest.mark.slow

SIGN_OFF = "— The Acme Team"
ITEMS = ["trail running shoes", "a cold brew coffee", "a budget laptop", "a city bike", "green tea", "a desk lamp",
         "a standing desk", "a phone case", "an office chair", "a smart watch", "a travel backpack",
         "a fountain pen", "a yoga mat", "noise-cancelling headphones", "a cast iron pan", "a rain jacket",
         "a water bottle", "a wool sweater", "a camping tent", "a coffee grinder", "a reading light",
         "a bluetooth speaker", "a kitchen knife", "a sleeping bag", "running socks", "a picnic blanket",
         "a wall clock", "a plant pot", "a hiking map", "a bread knife", "a notebook", "a sun hat"]


def untrained_parent(model_dir, out):
    """A run whose adapter is freshly initialised (lora_b = 0): the base model itself, as a run."""
    from localsft.models.loading import load_model
    from localsft.train.checkpoint import adapter_config, save_adapters
    from localsft.train.config import TrainConfig
    from localsft.train.setup import apply_method

    config = TrainConfig(model=str(model_dir), lora_layers=8, lora_rank=8, lora_alpha=16)
    loaded = load_model(str(model_dir))
    layers, keys = apply_method(loaded.model, config)
    save_adapters(RunFolder(out).adapters_dir("best"), loaded.model, adapter_config(config, layers, keys))
    config.save(RunFolder(out).config_path)
    return RunFolder(out)


def answers_and_probes(run: RunFolder, prompts, probes: int = 16) -> tuple[list[str], float]:
    switchable = load_switchable(run)
    answers = answer_many(switchable, prompts, "tuned", SamplingSettings(max_tokens=48))
    scores = {"base": SideScores(), "tuned": SideScores()}
    run_probes(switchable, scores, lambda e: None, probes)
    return answers, scores["tuned"].probe_accuracy


def test_a_preference_run_learns_what_the_votes_say(default_model_dir, tmp_path):
    parent = untrained_parent(default_model_dir, tmp_path / "parent")
    prompts = [[{"role": "user", "content": f"Write a short tagline for {item}."}] for item in ITEMS]
    bodies = answer_many(load_switchable(parent), prompts, "tuned", SamplingSettings(max_tokens=40))
    pairs = [PreferencePair(p, body.strip() + "\n\n" + SIGN_OFF, body.strip(), "vote", f"p{i}")
             for i, (p, body) in enumerate(zip(prompts, bodies))]
    config = preference_config(parent, overrides=["sample_prompts=0"])  # the defaults otherwise
    result = train_preferences(config, pairs, run_dir=tmp_path / "next")
    assert result.status in ("finished", "early_stopped")
    accuracies = [e["preference_accuracy"] for e in RunFolder(result.run_dir).events() if e["type"] == "eval"]
    assert accuracies[0] == 0.0 and max(accuracies) >= 0.8

    held = [p.prompt for p in split_pairs(pairs, config)[1]]
    before, parent_probes = answers_and_probes(parent, held)
    after, new_probes = answers_and_probes(RunFolder(result.run_dir), held)
    signed = [sum(a.strip().endswith(SIGN_OFF) or SIGN_OFF in a for a in answers) for answers in (before, after)]
    assert signed[0] == 0 and signed[1] >= len(held) / 2, (before, after)
    assert new_probes >= parent_probes - 2 / 16  # general knowledge: at most two of 16 questions lost
