"""The `gguf` export read back three ways: localsft's importer, the `gguf` package's reader, transformers.

Each reader's model (or weights) must match the adapter-on-base model in MLX.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.runs import HELD_OUT
from support.interop import assert_same_logits, mlx_reference

from localsft.export import export_run
from localsft.export.check import Probe, probe_logits
from localsft.export.merge import fuse, load_exported, load_tuned
from localsft.runs.folder import RunFolder


def _unpermute(rows: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row order (written independently of localsft's importer)."""
    n, cols = rows.shape
    return rows.reshape(heads, n // heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(n, cols)


def test_gguf_reads_back_with_our_importer_and_matches_mlx(tiny_run, tmp_path):
    from localsft.models.gguf_import import import_gguf

    (result,) = export_run(tiny_run, "gguf", dtype="float32")
    import_gguf(result.path / "model-f32.gguf", tmp_path / "imported")
    model, tokenizer = load_exported(tmp_path / "imported")
    ids, reference = mlx_reference(tiny_run)
    assert [Probe(m[:1], m[1]["content"]).ids(tokenizer) for m in HELD_OUT] == ids
    for got, want in zip(probe_logits(model, ids), reference):
        got = np.array(got)
        assert np.abs(got - want).max() < 1e-4
        assert (got.argmax(-1) == want.argmax(-1)).all()


def test_gguf_tensors_and_metadata_read_with_the_gguf_package(tiny_run):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    (result,) = export_run(tiny_run, "gguf", quantize=8, force=True)  # tiny random logits: near-ties flip
    reader = GGUFReader(str(result.path / "model-q8_0.gguf"))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.architecture"] == "llama"
    assert fields["general.file_type"] == 7  # MOSTLY_Q8_0
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.add_bos_token"] is False  # ChatML prompts start without a BOS token
    tokens = fields["tokenizer.ggml.tokens"]
    assert tokens[fields["tokenizer.ggml.eos_token_id"]] == "<|im_end|>"
    assert "<|im_start|>" in fields["tokenizer.chat_template"]
    merged = fuse(load_tuned(RunFolder.open(tiny_run)))
    config = merged.base_config
    assert len(tokens) == config["vocab_size"] and fields["llama.block_count"] == config["num_hidden_layers"]
    # The q8_0 tensors dequantized by the gguf package equal the merged model's weights (up to 8 bits).
    weights = {t.name: t for t in reader.tensors}
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    for layer in range(config["num_hidden_layers"]):
        for gguf_name, mlx_name in (("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                                    ("attn_v", "self_attn.v_proj"), ("ffn_down", "mlp.down_proj")):
            tensor = weights[f"blk.{layer}.{gguf_name}.weight"]
            got = dequantize(np.asarray(tensor.data), tensor.tensor_type).reshape(tensor.data.shape[0], -1)
            if gguf_name in heads:
                got = _unpermute(got, heads[gguf_name])
            module = merged.model.layers[layer]
            for part in mlx_name.split("."):
                module = getattr(module, part)
            want = np.array(module.weight)
            step = np.abs(want).max(axis=1, keepdims=True) / 127
            assert np.all(np.abs(got - want) <= step * 0.6 + 1e-6), (layer, gguf_name)


def test_gguf_loads_in_transformers_with_the_same_logits(tiny_run):
    transformers = pytest.importorskip("transformers")
    (result,) = export_run(tiny_run, "gguf", dtype="float16")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(result.path), gguf_file="model-f16.gguf")
    ids, reference = mlx_reference(tiny_run)
    assert_same_logits(model, ids, reference, 5e-2)  # f16 weights


def test_modelfile_has_template_system_line_and_stop_tokens(tiny_run):
    (result,) = export_run(tiny_run, "gguf")
    text = (result.path / "Modelfile").read_text()
    assert text.startswith("FROM ./model-f32.gguf\n")  # the tiny model is fp32
    assert 'TEMPLATE """{{ if .System }}<|im_start|>system' in text  # full rendering: test_families_ollama.py
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert "SYSTEM" not in text  # the tiny model's template adds no default system line
