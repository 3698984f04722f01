"""The GGUF importer agrees with an independent reader (transformers + gguf on torch CPU)."""

from __future__ import annotations

import numpy as np
import pytest

import mlx.core as mx

from localsft.models.default import default_gguf_path
from localsft.models.loading import load_model

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "def fibonacci(n):",
    "Translate to German: good morning",
]
TRICKY = [
    "Hello world",
    " leading space and  double  spaces",
    "emoji 🎉🚀 and flags 🇫🇷",
    "accents: café naïve Zürich señor ÅÆØ",
    "code: for (int i = 0; i < 10; i++) { x += arr[i]; }",
    "numbers 2024 3.14159 1,000,000",
    "<|im_start|>user\nhi<|im_end|>\n",
    "tabs\tand\nnewlines\r\n",
    "日本語のテキスト",
    "",
]


@pytest.fixture(scope="module")
def hf_reader():
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    gguf = default_gguf_path(install=False)
    tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.eval()
    return tok, model


@pytest.mark.slow
def test_tokenizer_matches_independent_reader(default_model_dir, hf_reader):
    ours = load_model(str(default_model_dir)).tokenizer
    theirs, _ = hf_reader
    for text in TRICKY:
        assert ours.encode(text, add_special_tokens=False) == theirs.encode(text, add_special_tokens=False), text
        ids = ours.encode(text, add_special_tokens=False)
        assert ours.decode(ids) == text


@pytest.mark.slow
def test_logits_match_independent_reader(default_model_dir, hf_reader):
    import torch

    loaded = load_model(str(default_model_dir))
    assert loaded.precision.dtype == "float32"
    theirs_tok, theirs = hf_reader
    for prompt in PROMPTS:
        ids = loaded.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        ours = np.array(loaded.model(mx.array([ids]))[0].astype(mx.float32))
        with torch.no_grad():
            ref = theirs(torch.tensor([ids])).logits[0].float().numpy()
        assert (ours.argmax(-1) == ref.argmax(-1)).all(), prompt
        assert np.abs(ours - ref).max() < 1e-3, (prompt, np.abs(ours - ref).max())
