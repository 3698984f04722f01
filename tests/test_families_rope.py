"""RoPE scaling in GGUF, both ways: Llama 3.1+'s (a `rope_freqs` tensor), Gemma 3's linear scaling and
Phi-3.5's longrope (two factor tensors and an attention factor).

Tiny models with the scaling of the real ones (Llama 3.2: llama3 scaling; Gemma 3 4B and up: linear
on the global layers; Phi-3.5: longrope past a 128-token original context), exported as GGUF, read
back by localsft's importer (the export's own check) and by real llama.cpp, whose logits on a prompt
longer than the original context must be MLX's. A scaling the export does not write is a plain refusal.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support.families import BY_NAME, build_family_model
from support.llama_cpp import missing_reason, run_llama_cpp
from support.runs import make_export_run

from localsft.errors import UserError
from localsft.export import export_run

LLAMA3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
GEMMA3 = {"full_attention": {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 8.0},
          "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}
PHI35 = {"rope_type": "longrope", "rope_theta": 10000.0, "original_max_position_embeddings": 128,
         "long_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0], "short_factor": [1.0] * 8}
DYNAMIC = {"rope_type": "dynamic", "rope_theta": 500000.0, "factor": 2.0}


def _run(family: str, rope: dict, tmp_path):
    from localsft.models.store import add_model

    extra = {**BY_NAME[family].extra, "rope_parameters": rope}
    if "original_max_position_embeddings" in rope and family == "phi3":  # Phi-3 keeps it beside rope_parameters
        extra["original_max_position_embeddings"] = rope["original_max_position_embeddings"]
    spec = dataclasses.replace(BY_NAME[family], extra=extra)
    info = add_model(str(build_family_model(spec, tmp_path / "hf")), name=f"scaled-{family}")
    return make_export_run(tmp_path / "run", info.path)


@pytest.mark.parametrize("family, rope, kind", [("llama3", LLAMA3, "llama3"), ("gemma3", GEMMA3, "linear"),
                                                ("phi3", PHI35, "longrope")])
def test_scaled_rope_runs_in_llama_cpp_like_mlx(family, rope, kind, tmp_path):
    from localsft.export.check import probe_logits
    from localsft.export.merge import load_tuned
    from localsft.inference.generate import chat_prompt
    from localsft.models.gguf_import import import_gguf
    from localsft.runs.folder import RunFolder

    run = _run(family, rope, tmp_path)
    (result,) = export_run(run, "gguf", out=tmp_path / "gguf", dtype="float32")
    assert result.check.passed, result.check.summary()  # the importer ran it with the same positions
    path = result.path / "model-f32.gguf"
    assert import_gguf(path, tmp_path / "back")["rope_scaling"]["rope_type"] == kind
    if missing_reason():
        pytest.skip(missing_reason())
    tuned = load_tuned(RunFolder.open(run))
    ids = chat_prompt(tuned.tokenizer, [{"role": "user", "content": "What is the capital of France? " * 6}])
    assert len(ids) > 64  # past the original context: positions where scaled and plain RoPE differ most
    want = np.array(probe_logits(tuned.model, [ids])[0])
    got = np.array(run_llama_cpp(path, prompts=[{"tokens": ids, "logits": True}])["prompts"][0]["logits"],
                   dtype=np.float32)
    assert np.abs(got - want).max() < 1e-2 * max(np.abs(want).max(), 1.0)  # f16 KV cache
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.95


def test_a_scaling_the_export_does_not_write_is_named(tmp_path):
    run = _run("llama3", DYNAMIC, tmp_path)
    with pytest.raises(UserError, match="'dynamic'.*convert_hf_to_gguf"):
        export_run(run, "gguf", out=tmp_path / "gguf")


def test_llama_3_1_scaling_is_read_back_from_its_factors():
    """The parameters of Llama 3.1 8B come back exactly from the rope_freqs llama.cpp keeps."""
    from localsft.models.rope_scaling import llama3_factors, llama3_scaling

    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}
    config = {"hidden_size": 4096, "num_attention_heads": 32, "head_dim": 128, "rope_theta": 500000.0,
              "max_position_embeddings": 131072, "rope_scaling": scaling}
    back = llama3_scaling(llama3_factors(config), config)
    assert back.keys() == scaling.keys()
    assert all(back[k] == pytest.approx(v, rel=1e-5) for k, v in scaling.items() if k != "rope_type")
    with pytest.raises(UserError, match="rope_freqs"):
        llama3_scaling(np.linspace(1, 3, 64), config)  # not llama3's shape
