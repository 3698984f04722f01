"""Side by side: each side answers exactly as its model alone, both decode as one batch."""

from __future__ import annotations

import mlx_lm
import pytest
from support.runs import make_run
from mlx_lm.tuner.utils import load_adapters

from localsft.inference.switch import load_switchable
from localsft.inference.batch import decode_tokens
from localsft.inference.side_by_side import CompareChat, answer_sides, open_compare
from localsft.errors import UserError
from localsft.inference.generate import SamplingSettings, chat_prompt

GREEDY = SamplingSettings(max_tokens=24)


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "tiny-run", tiny_model_dir)


@pytest.fixture(scope="module")
def switchable(tiny_run):
    return load_switchable(tiny_run)


@pytest.fixture(scope="module")
def alone(tiny_model_dir, tiny_run):
    """The base model and the tuned model loaded separately with mlx-lm, as references."""
    base, tokenizer = mlx_lm.load(str(tiny_model_dir))
    tuned, _ = mlx_lm.load(str(tiny_model_dir))
    load_adapters(tuned, str(tiny_run / "adapters" / "best"))

    def answer(side: str, messages: list[dict], max_tokens: int = GREEDY.max_tokens) -> str:
        model = tuned if side == "tuned" else base
        return mlx_lm.generate(model, tokenizer, chat_prompt(tokenizer, messages), max_tokens=max_tokens)

    return answer


def test_side_by_side_answers_equal_each_model_alone(switchable, alone):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    answers = answer_sides(switchable, messages, GREEDY)
    assert answers["base"] == alone("base", messages)
    assert answers["tuned"] == alone("tuned", messages)
    assert answers["base"] != answers["tuned"]  # the adapter really changes the answer


def test_multi_turn_history_is_kept_per_side(switchable, alone):
    chat = CompareChat(switchable, GREEDY, system="Answer briefly.")
    first = answer_sides_from(chat, "Write a tagline for our running shoes.")
    second = answer_sides_from(chat, "Shorter, please.")
    for side in ("base", "tuned"):
        history = chat.history[side]
        assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant"]
        assert history[2]["content"] == first[side]  # each side sees its own earlier answer
        assert second[side] == alone(side, history[:4])
    assert chat.history["base"][2] != chat.history["tuned"][2]


def answer_sides_from(chat: CompareChat, text: str) -> dict[str, str]:
    answers = {"base": "", "tuned": ""}
    for side, piece in chat.send(text):
        answers[side] += piece
    return answers


def test_both_sides_decode_as_one_batch(switchable, monkeypatch):
    """One forward pass per generated token for both answers, not one per answer."""
    model_class = type(switchable.model)
    batch_sizes = []
    original = model_class.__call__

    def counting(self, inputs, *args, **kwargs):
        batch_sizes.append(inputs.shape[0])
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(model_class, "__call__", counting)
    prompt = chat_prompt(switchable.tokenizer, [{"role": "user", "content": "Hello there"}])
    steps = list(decode_tokens(switchable.model, [prompt, prompt], eos_ids=set(), settings=GREEDY,
                               switch=switchable.switch, adapter_on=[False, True]))
    assert len(steps) == GREEDY.max_tokens and all(len(step) == 2 for step in steps)
    assert batch_sizes == [2] * len(batch_sizes)
    assert len(batch_sizes) == GREEDY.max_tokens  # one forward pass per token, for both rows


def test_a_finished_row_leaves_the_batch_and_the_other_continues(switchable, alone):
    """Rows stop at their own end-of-turn token; the other row decodes on, unchanged."""
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = chat_prompt(switchable.tokenizer, messages)
    tuned_alone = list(decode_tokens(switchable.model, [prompt], set(), GREEDY, switchable.switch, [True]))
    base_first = next(iter(decode_tokens(switchable.model, [prompt], set(), GREEDY, switchable.switch, [False])))
    stop = {base_first[0][1]}  # make the base model's first token an end-of-turn token
    tuned_tokens = [step[0][1] for step in tuned_alone]
    assert stop.isdisjoint(tuned_tokens[:5]), "pick a prompt whose answers start differently"
    steps = list(decode_tokens(switchable.model, [prompt, prompt], stop, GREEDY, switchable.switch, [False, True]))
    assert all(row == 1 for step in steps for row, _ in step)  # the base row ended at once
    got = [token for step in steps for _, token in step]
    expected = tuned_tokens[:tuned_tokens.index(next(iter(stop)))] if stop & set(tuned_tokens) else tuned_tokens
    assert got == expected


def test_sampling_is_reproducible_with_a_seed_and_respects_max_tokens(switchable):
    messages = [{"role": "user", "content": "Write a tagline"}]
    settings = SamplingSettings(max_tokens=12, temperature=1.0, top_p=0.9, seed=7)
    first = answer_sides(switchable, messages, settings)
    assert answer_sides(switchable, messages, settings) == first
    other = answer_sides(switchable, messages, SamplingSettings(max_tokens=12, temperature=1.0, top_p=0.9, seed=8))
    assert other != first
    prompt = chat_prompt(switchable.tokenizer, messages)
    steps = list(decode_tokens(switchable.model, [prompt], set(), settings, switchable.switch, [True]))
    assert len(steps) == 12


def test_stopping_the_stream_keeps_the_partial_answers(switchable):
    chat = CompareChat(switchable, GREEDY)
    stream = chat.send("Hello")
    pieces = [next(stream) for _ in range(4)]
    stream.close()
    for side in ("base", "tuned"):
        assert chat.history[side][-1]["role"] == "assistant"
        assert chat.history[side][-1]["content"] == "".join(p for s, p in pieces if s == side)


def test_send_pairs_streams_growing_partial_answers(tiny_run):
    chat = open_compare(tiny_run, GREEDY)
    pairs = list(chat.send_pairs("What is two plus two?"))
    assert len(pairs) > 2
    for before, after in zip(pairs, pairs[1:]):
        assert all(after[side].startswith(before[side]) for side in ("base", "tuned"))
    assert pairs[-1] == {side: chat.history[side][-1]["content"] for side in ("base", "tuned")}


def test_run_without_adapter_is_a_plain_error(tiny_model_dir, tmp_path):
    run = make_run(tmp_path / "run", tiny_model_dir)
    for path in (run / "adapters" / "best").iterdir():
        path.unlink()
    with pytest.raises(UserError, match="no trained adapter"):
        load_switchable(run)


def test_dora_adapter_rows_equal_each_model_alone(tiny_model_dir, tmp_path):
    """DoRA layers are switched per row too: one batch gives the base and the tuned logits."""
    import mlx.core as mx
    from support.runs import save_random_adapter

    run = make_run(tmp_path / "dora-run", tiny_model_dir)
    save_random_adapter(tiny_model_dir, run / "adapters" / "best", strength=3.0, fine_tune_type="dora")
    base, tokenizer = mlx_lm.load(str(tiny_model_dir))
    tuned, _ = mlx_lm.load(str(tiny_model_dir))
    load_adapters(tuned, str(run / "adapters" / "best"))
    prompt = mx.array([chat_prompt(tokenizer, [{"role": "user", "content": "What is the capital of France?"}])])
    switchable = load_switchable(run)
    switchable.switch.set_rows([False, True])
    both = switchable.model(mx.concatenate([prompt, prompt]))
    assert mx.allclose(both[0], base(prompt)[0], atol=1e-5)
    assert mx.allclose(both[1], tuned(prompt)[0], atol=1e-5)
    assert not mx.allclose(both[0], both[1], atol=1e-2)


def test_full_fine_tunes_and_mismatched_adapters_are_refused(tiny_model_dir, tmp_path):
    import json

    run = make_run(tmp_path / "run", tiny_model_dir)
    config_path = run / "adapters" / "best" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "fine_tune_type": "full"}))
    with pytest.raises(UserError, match="not an adapter"):
        load_switchable(run)
    keys = {**config["lora_parameters"], "keys": ["embed_tokens"]}  # weights are for other layers
    config_path.write_text(json.dumps({**config, "lora_parameters": keys}))
    with pytest.raises(UserError, match="does not fit model tiny-llama"):
        load_switchable(run)
