"""Chat template rendering and prompt masking: which tokens the model is trained on."""

from __future__ import annotations

import json
import shutil

import pytest

from localsft.data import preview, tokenize_chat, tokenize_example
from localsft.models import load_tokenizer

CHAT = [{"role": "user", "content": "Write a tagline for running shoes."},
        {"role": "assistant", "content": "Light, fast, yours."}]
MULTI = [{"role": "system", "content": "You write taglines."},
         {"role": "user", "content": "Shoes?"},
         {"role": "assistant", "content": "Run lighter."},
         {"role": "user", "content": "Coffee?"},
         {"role": "assistant", "content": "Wake up to more."}]


@pytest.fixture(scope="module")
def tiny_tok(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


def trained_text(tok, example) -> str:
    return "".join(piece for piece, carries in preview(tok, example) if carries)


def test_ids_are_the_templates_own_tokens(tiny_tok):
    out = tokenize_chat(tiny_tok, CHAT)
    assert out.ids == list(tiny_tok.apply_chat_template(CHAT))
    assert len(out.loss_mask) == len(out.ids)


def test_only_the_answer_and_its_end_token_carry_loss(tiny_tok):
    assert trained_text(tiny_tok, {"messages": CHAT}) == "Light, fast, yours.<|im_end|>"
    out = tokenize_chat(tiny_tok, CHAT)
    assert out.ids[out.loss_mask.index(True) - 1] != tiny_tok.eos_token_id  # prompt tokens come first
    assert tiny_tok.eos_token_id in [i for i, m in zip(out.ids, out.loss_mask) if m]


def test_every_assistant_turn_of_a_multi_turn_chat_carries_loss(tiny_tok):
    runs = [piece for piece, carries in preview(tiny_tok, {"messages": MULTI}) if carries]
    assert runs == ["Run lighter.<|im_end|>", "Wake up to more.<|im_end|>"]


def test_without_prompt_masking_every_token_carries_loss(tiny_tok):
    out = tokenize_chat(tiny_tok, MULTI, mask_prompt=False)
    assert all(out.loss_mask) and out.ids == list(tiny_tok.apply_chat_template(MULTI))


def test_plain_text_is_whole_loss_continuation_ending_in_eos(tiny_tok):
    out = tokenize_example(tiny_tok, {"text": "The quick brown fox."})
    assert all(out.loss_mask)
    assert out.ids[-1] == tiny_tok.eos_token_id
    assert tiny_tok.decode(out.ids[:-1]) == "The quick brown fox."


def test_preview_rejoins_into_the_exact_rendered_text(tiny_tok):
    text = "".join(piece for piece, _ in preview(tiny_tok, {"messages": MULTI}))
    assert text == tiny_tok.apply_chat_template(MULTI, tokenize=False)


def test_tokenizer_without_template_uses_the_fallback(tiny_model_dir, tmp_path):
    folder = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = load_tokenizer(str(folder))
    runs = preview(tok, {"messages": CHAT})
    assert "".join(p for p, _ in runs) == "user: Write a tagline for running shoes.\nassistant: Light, fast, yours.<|im_end|>\n"
    assert "".join(p for p, c in runs if c).strip() == "Light, fast, yours.<|im_end|>"


@pytest.mark.slow
def test_default_model_masks_its_injected_system_line(default_model_dir):
    tok = load_tokenizer(str(default_model_dir))
    full = tok.apply_chat_template(CHAT, tokenize=False)
    assert "You are a helpful AI assistant named SmolLM" in full  # the template adds it
    out = tokenize_chat(tok, CHAT)
    assert out.ids == list(tok.apply_chat_template(CHAT))
    assert trained_text(tok, {"messages": CHAT}) == "Light, fast, yours.<|im_end|>"
    runs = [p for p, c in preview(tok, {"messages": MULTI}) if c]
    assert runs == ["Run lighter.<|im_end|>", "Wake up to more.<|im_end|>"]


def test_a_chat_that_opens_with_the_assistant_still_masks_right(tiny_tok):
    chat = [{"role": "assistant", "content": "Hi! How can I help?"}] + CHAT
    runs = [p for p, c in preview(tiny_tok, {"messages": chat}) if c]
    assert runs == ["Hi! How can I help?<|im_end|>", "Light, fast, yours.<|im_end|>"]


class NoOffsets:
    """A tokenizer that cannot report character offsets, like Python-only (slow) tokenizers."""

    def __init__(self, tok):
        self.tok = tok
        self.eos_token, self.has_chat_template = tok.eos_token, True

    def __call__(self, *args, **kwargs):
        raise NotImplementedError("return_offsets_mapping is not available for Python tokenizers")

    def apply_chat_template(self, *args, **kwargs):
        return self.tok.apply_chat_template(*args, **kwargs)

    def encode(self, text, **kwargs):
        return self.tok.encode(text, **kwargs)


def test_tokenizers_without_offsets_get_the_same_ids_and_mask(tiny_tok):
    fast = tokenize_chat(tiny_tok, MULTI)
    slow = tokenize_chat(NoOffsets(tiny_tok), MULTI)
    assert (slow.ids, slow.loss_mask) == (fast.ids, fast.loss_mask)


def test_a_chat_the_template_refuses_is_one_dropped_row(tiny_model_dir, tmp_path):
    from localsft.data import check

    folder = tmp_path / "strict"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                               "{% endif %}" + config["chat_template"])
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    rows = [{"messages": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}"}]}
            for i in range(12)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[:3])
                    + json.dumps({"messages": MULTI}) + "\n"  # line 4: has a system message
                    + "".join(json.dumps(r) + "\n" for r in rows[3:]))
    report = check(data, tokenizer=load_tokenizer(str(folder)))
    assert report.rows_kept == 12
    assert report.problems[0].line == 4 and "System role not supported" in report.problems[0].message
