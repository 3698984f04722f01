"""The `hf` and `peft` exports as their users load them: transformers (+ peft) on torch CPU.

Logits must match the adapter-on-base model in MLX on held-out chats (same top-1
tokens everywhere, max abs difference < 1e-2 in fp32), and the tokenizer must load
offline from the export alone and tokenize exactly as MLX does.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_export_runs import HELD_OUT, tiny_run  # noqa: F401  (fixture)

from localsft.export import export_run
from localsft.export.check import Probe, probe_logits
from localsft.export.merge import load_tuned
from localsft.runs.folder import RunFolder

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _mlx_reference(run_dir):
    """Token ids and adapter-on-base logits (MLX) for the held-out chats."""
    tuned = load_tuned(RunFolder.open(run_dir))
    ids = [Probe(m[:1], m[1]["content"]).ids(tuned.tokenizer) for m in HELD_OUT]
    return ids, [np.array(x) for x in probe_logits(tuned.model, ids)]


def _assert_same_logits(model, ids, reference, tolerance):
    with torch.no_grad():
        for seq, want in zip(ids, reference):
            got = model(torch.tensor([seq])).logits[0].float().numpy()
            assert np.abs(got - want).max() < tolerance
            assert (got.argmax(-1) == want.argmax(-1)).all()


def _assert_same_tokens(folder, ids):
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    for messages, want in zip(HELD_OUT, ids):
        prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
        got = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        got += tokenizer(messages[1]["content"], add_special_tokens=False)["input_ids"]
        assert got == want
    return tokenizer


def test_hf_export_loads_in_transformers_with_the_same_logits(tiny_run):
    (result,) = export_run(tiny_run, "hf", dtype="float32")
    ids, reference = _mlx_reference(tiny_run)
    _assert_same_tokens(result.path, ids)
    model = transformers.LlamaForCausalLM.from_pretrained(str(result.path), local_files_only=True)
    assert model.dtype == torch.float32
    _assert_same_logits(model, ids, reference, 1e-3)
    assert model.generation_config.eos_token_id == 2  # <|im_end|> of the tiny tokenizer


def test_peft_export_loads_on_the_base_with_the_same_logits(tiny_run, tiny_model_dir):
    from peft import PeftModel

    (result,) = export_run(tiny_run, "peft", dtype="float32")
    ids, reference = _mlx_reference(tiny_run)
    base = transformers.LlamaForCausalLM.from_pretrained(str(tiny_model_dir), local_files_only=True)
    model = PeftModel.from_pretrained(base, str(result.path)).eval()
    _assert_same_logits(model, ids, reference, 1e-3)
