"""Many adapters on one copy of the base: every row of one batch answers like its model alone."""

from __future__ import annotations

import mlx.core as mx
import mlx_lm
import pytest
from fake_run import save_random_adapter
from mlx_lm.tuner.utils import load_adapters

from localsft.errors import UserError
from localsft.inference.batch import answer_all
from localsft.inference.generate import SamplingSettings, chat_prompt
from localsft.inference.switch import AdapterBank
from localsft.models.loading import load_model

GREEDY = SamplingSettings(max_tokens=20)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    """Three adapters of different seeds, ranks and depths (one DoRA)."""
    root = tmp_path_factory.mktemp("adapters")
    return [save_random_adapter(tiny_model_dir, root / "a", seed=1),
            save_random_adapter(tiny_model_dir, root / "b", seed=2, rank=8, num_layers=1),
            save_random_adapter(tiny_model_dir, root / "c", seed=3, strength=3.0, fine_tune_type="dora")]


def alone_logits(model_dir, adapter, tokens):
    model, _ = mlx_lm.load(str(model_dir))
    if adapter is not None:
        load_adapters(model, str(adapter))
    return model(tokens)[0]


def test_each_row_of_a_mixed_batch_equals_its_model_alone(tiny_model_dir, adapters):
    bank = AdapterBank(load_model(str(tiny_model_dir)))
    slots = [bank.add(path) for path in adapters]
    assert slots == [1, 2, 3] and bank.add(adapters[0]) == 1  # attached once
    prompt = mx.array([chat_prompt(bank.loaded.tokenizer, QUESTION)])
    bank.switch.set_adapters([0, 1, 2, 3, 2])
    rows = bank.loaded.model(mx.concatenate([prompt] * 5))
    references = [alone_logits(tiny_model_dir, a, prompt) for a in [None, *adapters]]
    for row, slot in enumerate([0, 1, 2, 3, 2]):
        assert mx.allclose(rows[row], references[slot], atol=1e-4)
    assert not mx.allclose(references[1], references[2], atol=1e-2)


def test_greedy_answers_in_one_batch_equal_each_model_alone(tiny_model_dir, adapters):
    loaded = load_model(str(tiny_model_dir))
    bank = AdapterBank(loaded)
    bank.add(adapters[0])
    weights_before = id(loaded.model.layers[0].self_attn.q_proj.base.weight)
    bank.add(adapters[1])  # added later: no reload, the base weights stay the same arrays
    assert id(loaded.model.layers[0].self_attn.q_proj.base.weight) == weights_before
    prompt = chat_prompt(loaded.tokenizer, QUESTION)
    answers = answer_all(loaded.model, loaded.tokenizer, [prompt] * 3, GREEDY, bank.switch,
                         adapter_slots=[0, 1, 2])
    for answer, adapter in zip(answers, [None, *adapters[:2]]):
        model, tokenizer = mlx_lm.load(str(tiny_model_dir))
        if adapter is not None:
            load_adapters(model, str(adapter))
        assert answer == mlx_lm.generate(model, tokenizer, prompt, max_tokens=GREEDY.max_tokens)
    assert len(set(answers)) == 3


def test_an_adapter_for_another_model_is_refused_and_the_bank_still_works(tiny_model_dir, adapters, tmp_path):
    from tiny_model import make_tiny_model

    other = make_tiny_model(tmp_path / "wide", hidden=96)
    wrong = save_random_adapter(other, tmp_path / "wrong")
    bank = AdapterBank(load_model(str(tiny_model_dir)))
    bank.add(adapters[0])
    with pytest.raises(UserError, match="does not fit model tiny-llama.*shape"):
        bank.add(wrong)
    assert bank.add(adapters[1]) == 2


def test_a_refused_adapter_leaves_the_other_slots_untouched(tiny_model_dir, adapters, tmp_path):
    """An adapter whose first layers fit and whose last does not changes nothing."""

    bad = save_random_adapter(tiny_model_dir, tmp_path / "bad", seed=5)
    weights = mx.load(str(bad / "adapters.safetensors"))
    last = sorted(weights)[-1]
    weights[last] = mx.zeros((3, 3))
    mx.save_safetensors(str(bad / "adapters.safetensors"), weights)
    bank = AdapterBank(load_model(str(tiny_model_dir)))
    bank.add(adapters[0])
    with pytest.raises(UserError, match="has shape"):
        bank.add(bad)
    slot = bank.add(adapters[1])
    prompt = mx.array([chat_prompt(bank.loaded.tokenizer, QUESTION)])
    bank.switch.set_adapters([slot])
    assert mx.allclose(bank.loaded.model(prompt)[0], alone_logits(tiny_model_dir, adapters[1], prompt), atol=1e-4)


def test_an_adapter_trained_again_gets_a_fresh_slot(tiny_model_dir, tmp_path):
    folder = save_random_adapter(tiny_model_dir, tmp_path / "run-adapter", seed=1)
    bank = AdapterBank(load_model(str(tiny_model_dir)))
    assert bank.add(folder) == 1 and bank.add(folder) == 1
    save_random_adapter(tiny_model_dir, folder, seed=9)  # a resumed run finished again
    slot = bank.add(folder)
    assert slot == 2
    prompt = mx.array([chat_prompt(bank.loaded.tokenizer, QUESTION)])
    bank.switch.set_adapters([slot])
    assert mx.allclose(bank.loaded.model(prompt)[0], alone_logits(tiny_model_dir, folder, prompt), atol=1e-4)
