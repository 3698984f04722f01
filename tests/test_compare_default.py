"""Side by side on the real default model: same answers as each model alone, memory of one model."""

from __future__ import annotations

import mlx.core as mx
import mlx_lm
import pytest
from support.runs import make_run, save_random_adapter
from mlx.utils import tree_flatten
from mlx_lm.tuner.utils import load_adapters

from localsft.inference.switch import load_switchable
from localsft.inference.batch import decode_tokens
from localsft.inference.side_by_side import answer_sides
from localsft.inference.generate import SamplingSettings, chat_prompt
from localsft.models.loading import load_model

pytestmark = pytest.mark.slow
GREEDY = SamplingSettings(max_tokens=20)
QUESTIONS = ["Write a tagline for a coffee shop."]


@pytest.fixture(scope="module")
def default_run(default_model_dir, tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("runs") / "default-run", default_model_dir)
    # a gentle adapter on the last 8 layers: answers stay fluent but change
    save_random_adapter(default_model_dir, run / "adapters" / "best", strength=0.03, num_layers=8)
    return run


@pytest.fixture(scope="module")
def switchable(default_run):
    return load_switchable(default_run)


def test_side_by_side_equals_each_model_alone(default_model_dir, default_run, switchable):
    reference = load_model(str(default_model_dir))
    alone = {"base": [], "tuned": []}
    for side in ("base", "tuned"):
        if side == "tuned":
            load_adapters(reference.model, str(default_run / "adapters" / "best"))
        for question in QUESTIONS:
            prompt = chat_prompt(reference.tokenizer, [{"role": "user", "content": question}])
            alone[side].append(mlx_lm.generate(reference.model, reference.tokenizer, prompt,
                                               max_tokens=GREEDY.max_tokens))
    del reference
    for i, question in enumerate(QUESTIONS):
        answers = answer_sides(switchable, [{"role": "user", "content": question}], GREEDY)
        assert answers == {"base": alone["base"][i], "tuned": alone["tuned"][i]}
    assert "Cozy" in alone["base"][0]  # the real model answers fluently
    assert alone["base"] != alone["tuned"]


def test_peak_memory_side_by_side_within_1_15x_of_one_model(switchable):
    prompt = chat_prompt(switchable.tokenizer, [{"role": "user", "content": "Write a tagline for a coffee shop."}])
    weights = sum(v.nbytes for _, v in tree_flatten(switchable.model.parameters()))
    unrelated = mx.get_active_memory() - weights  # arrays of other tests still alive

    def peak(rows: list[bool]) -> int:
        mx.reset_peak_memory()
        settings = SamplingSettings(max_tokens=8)
        for _ in decode_tokens(switchable.model, [prompt] * len(rows), set(), settings, switchable.switch, rows):
            pass
        return mx.get_peak_memory() - unrelated

    one, both = peak([True]), peak([False, True])
    assert one >= weights
    assert both <= 1.15 * one, f"side by side {both / 1e6:.0f} MB vs one model {one / 1e6:.0f} MB"
