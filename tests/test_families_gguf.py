"""GGUF import in every tensor type people have, against the same model's float weights.

A tiny Llama 3, Gemma 2, Gemma 3 and Phi-3 (fused qkv and gate-up matrices; hidden size 256, so
rows hold whole 256-weight K-quant blocks) are written as GGUF files in F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (the gguf
package's own quantizer) and Q2_K..Q6_K plus Q4_K_M's mix (tests/support/kquants.py), imported
with `localsft models add`, and compared with the float weights they were written from. Real
llama.cpp runs the Q4_K_M file and agrees with MLX on the imported model's logits.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from support.families import build_family_model
from support.kquants import kquant_writer
from support.llama_cpp import missing_reason, run_llama_cpp

from localsft.errors import UserError
from localsft.export.gguf import write_file
from localsft.models.store import add_model

# Largest weight error allowed, as a fraction of the tensor's largest weight (min/max scales here).
TOLERANCE = {"F32": 1e-6, "F16": 1e-3, "BF16": 8e-3, "Q8_0": 1e-2, "Q5_0": 6e-2, "Q5_1": 6e-2, "Q4_0": 0.15,
             "Q4_1": 0.15, "Q6_K": 4e-2, "Q5_K": 6e-2, "Q4_K": 0.12, "Q3_K": 0.3, "Q2_K": 0.4}
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module", params=["llama3", "gemma2", "gemma3", "phi3"])
def source(request, tmp_path_factory):
    """(tuned-like model for the writer, float weights by name) of a tiny model with hidden size 256."""
    import mlx_lm

    from localsft.models.store import mlx_lm_config

    folder = build_family_model(request.param, tmp_path_factory.mktemp(request.param) / "hf", hidden=256)
    config = mlx_lm_config(json.loads((folder / "config.json").read_text()))
    (folder / "config.json").write_text(json.dumps(config))
    model, tokenizer = mlx_lm.load(str(folder))
    weights = {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(model.parameters())}
    return SimpleNamespace(model=model, tokenizer=tokenizer, base_path=folder, base_config=config, name=None), weights


def _imported(tmp_path, source, kind: str):
    import mlx_lm

    tuned, _ = source
    path = tmp_path / f"model-{kind}.gguf"
    write_file(tuned, path, kind, quantize=kquant_writer)
    info = add_model(str(path), name=f"m-{kind.lower()}")
    model, tokenizer = mlx_lm.load(str(info.path))
    return path, info, model, tokenizer


@pytest.mark.parametrize("kind", list(TOLERANCE))
def test_every_tensor_type_imports_to_the_float_weights(source, kind, tmp_path):
    from localsft.models.loading import dequantize

    tuned, weights = source
    _, info, model, tokenizer = _imported(tmp_path, source, kind)
    assert info.architecture == tuned.base_config["model_type"]
    got = {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(dequantize(model).parameters())}
    assert got.keys() == weights.keys()
    for name, want in weights.items():
        err = np.abs(got[name] - want).max() / max(np.abs(want).max(), 1e-2)  # Gemma's norms start at 0
        assert err <= TOLERANCE[kind], (name, err)
    assert tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True) == \
        tuned.tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True)


def test_q4_k_m_file_runs_in_llama_cpp_like_the_imported_model(source, tmp_path):
    from localsft.export.check import probe_logits

    path, _, model, tokenizer = _imported(tmp_path, source, "Q4_K")
    if missing_reason():
        pytest.skip(missing_reason())
    ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True)
    want = np.array(probe_logits(model, [ids])[0])
    got = np.array(run_llama_cpp(path, prompts=[{"tokens": ids, "logits": True}])["prompts"][0]["logits"],
                   dtype=np.float32)
    # llama.cpp multiplies K-quant weights with 8-bit quantized activations: close, not equal
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9


def test_unsupported_architecture_and_type_are_named(tmp_path):
    import gguf

    from localsft.models.gguf_import import import_gguf

    odd = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(odd), "mamba")
    writer.add_token_list(["a", "b"])
    writer.add_tensor("token_embd.weight", np.zeros((2, 256), np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UserError, match=r"mamba.*llama, qwen2, qwen3, gemma2"):
        import_gguf(odd, tmp_path / "out")
    ternary = tmp_path / "ternary.gguf"
    writer = gguf.GGUFWriter(str(ternary), "llama")
    qtype = gguf.GGMLQuantizationType.TQ2_0
    writer.add_tensor("token_embd.weight", gguf.quants.quantize(np.zeros((2, 256), np.float32), qtype),
                      raw_dtype=qtype)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UserError, match=r"TQ2_0.*Supported types: F32, F16, BF16, Q8_0"):
        import_gguf(ternary, tmp_path / "out2")


def test_qwen_and_llama3_split_rules_survive_the_round_trip():
    """Qwen splits numbers digit by digit, Llama 3 in threes: the export names the rule, the import applies it."""
    from tokenizers import Regex, pre_tokenizers

    from localsft.export.gguf_vocab import _pre_tokenizer_name
    from localsft.models.tokenizer_build import _LLAMA3_SPLIT, _QWEN2_SPLIT, _pre_tokenizer

    cases = ((_QWEN2_SPLIT, "qwen2", ["1", "2", "3", "4", "5"]), (_LLAMA3_SPLIT, "llama-bpe", ["123", "45"]))
    for rule, name, pieces in cases:
        spec = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(rule), behavior="isolated"),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        assert _pre_tokenizer_name(json.loads(spec.__getstate__())) == name
        got = [p for p, _ in _pre_tokenizer(name).pre_tokenize_str("12345")]
        assert got == pieces
