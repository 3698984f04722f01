"""Every shipped recipe validates, lists, and trains (a couple of steps on the tiny model)."""

from __future__ import annotations

import re

import pytest

from localsft.cli import main
from localsft.errors import UserError
from localsft.train.recipes import list_recipes, load_recipe
from localsft.train import train
from support.training import make_data

RECIPES = [r.name for r in list_recipes()]


def test_presets_and_task_recipes_are_shipped():
    assert {"quick-test", "balanced", "thorough", "brand-voice", "fixed-format", "glossary",
            "classification"} <= set(RECIPES)
    for recipe in list_recipes():
        config = recipe.train_config()
        if config.data:
            assert config.format_check, f"{recipe.name} has a dataset but no format check"
            re.compile(config.format_check["regex"])


def test_recipes_command_lists_one_line_each(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES:
        assert len([line for line in out.splitlines() if line.startswith(name + " ")]) == 1


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_trains(name, tiny_model_dir, tmp_path):
    config = load_recipe(name).train_config()
    data = config.data or str(make_data(tmp_path / "data"))
    config = config.replace(model=str(tiny_model_dir), data=data, iters=2, sample_prompts=1,
                            sample_max_tokens=2, eval_every=2, max_seq_len=256, batch_tokens=512)
    result = train(config, tmp_path / "run")
    assert result.status == "finished" and result.step == 2
    assert (result.run_dir / "data" / "train.jsonl").exists()


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(UserError, match="balanced"):
        load_recipe("no-such-recipe")
