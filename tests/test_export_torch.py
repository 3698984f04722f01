"""The `hf` and `peft` exports as their users load them: transformers (+ peft) on torch CPU.

Logits must match the adapter-on-base model in MLX on held-out chats (same top-1
tokens everywhere, max abs difference < 1e-2 in fp32), and the tokenizer must load
offline from the export alone and tokenize exactly as MLX does.
"""

from __future__ import annotations

import pytest

from localsft.export import export_run
from support.interop import assert_same_logits, assert_same_tokens, mlx_reference

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def test_hf_export_loads_in_transformers_with_the_same_logits(tiny_run):
    (result,) = export_run(tiny_run, "hf", dtype="float32")
    ids, reference = mlx_reference(tiny_run)
    assert_same_tokens(result.path, ids)
    model = transformers.LlamaForCausalLM.from_pretrained(str(result.path), local_files_only=True)
    assert model.dtype == torch.float32
    assert_same_logits(model, ids, reference, 1e-3)
    assert model.generation_config.eos_token_id == 2  # <|im_end|> of the tiny tokenizer


def test_peft_export_loads_on_the_base_with_the_same_logits(tiny_run, tiny_model_dir):
    from peft import PeftModel

    (result,) = export_run(tiny_run, "peft", dtype="float32")
    ids, reference = mlx_reference(tiny_run)
    base = transformers.LlamaForCausalLM.from_pretrained(str(tiny_model_dir), local_files_only=True)
    model = PeftModel.from_pretrained(base, str(result.path)).eval()
    assert_same_logits(model, ids, reference, 1e-3)
