"""End to end on the real default model (SmolLM2-135M-Instruct): peft, hf and gguf exports
loaded by transformers (+ peft) on torch CPU give the logits MLX gives with the adapter on the base,
and the mlx export answers like the adapter on the base in mlx-lm.

One export (fp32, so the comparison can be tight) is shared by the tests of this module.
"""

from __future__ import annotations

import json

import pytest
from support.runs import make_export_run
from support.interop import assert_same_logits, assert_same_tokens, mlx_reference

from localsft.export import export_run

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def exported(default_model_dir, tmp_path_factory):
    """(run, {format: result}, probe ids, MLX adapter-on-base logits) for a rank-8 LoRA on 8 layers."""
    root = tmp_path_factory.mktemp("default-export")
    run = make_export_run(root / "run", default_model_dir, num_layers=8, rank=8, scale=20.0, strength=0.02)
    results = export_run(run, "peft,mlx,hf,gguf", out=root / "out", dtype="float32")
    return run, {r.fmt: r for r in results}, *mlx_reference(run)


def test_every_export_of_the_default_model_passes_its_fuse_check(exported):
    _, results, _, _ = exported
    for result in results.values():
        assert result.check.passed and result.check.greedy_agreement == 1.0
        assert result.check.max_abs_diff < 1e-2


def test_hf_export_loads_offline_in_transformers_with_the_same_logits(exported):
    _, results, ids, reference = exported
    folder = results["hf"].path
    assert_same_tokens(folder, ids)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    assert_same_logits(model, ids, reference, 1e-2)
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == 2  # <|im_end|>


def test_peft_export_loads_on_the_base_in_transformers_with_the_same_logits(exported, default_model_dir, tmp_path):
    from mlx_lm.utils import save_model
    from peft import PeftModel

    from localsft.models.loading import load_model
    from localsft.platform.backend import AS_TRAINED

    # The base as a plain fp32 folder transformers reads (weights dequantized by MLX, no adapter).
    base = load_model(default_model_dir, AS_TRAINED)
    save_model(tmp_path, base.model)
    (tmp_path / "config.json").write_text(json.dumps(base.config))
    _, results, ids, reference = exported
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), local_files_only=True)
    model = PeftModel.from_pretrained(model, str(results["peft"].path)).eval()
    assert_same_logits(model, ids, reference, 1e-2)
    config = json.loads((results["peft"].path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_gguf_export_loads_in_transformers_with_the_same_logits(exported):
    _, results, ids, reference = exported
    folder = results["gguf"].path
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in (folder / "Modelfile").read_text()
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), gguf_file="model-f32.gguf")
    assert_same_logits(model, ids, reference, 1e-2)


def test_mlx_export_generates_the_adapter_on_base_answers(exported, default_model_dir):
    import mlx_lm

    from localsft.inference.generate import chat_prompt
    from localsft.models.loading import dequantize

    run, results, _, _ = exported
    merged, tokenizer = mlx_lm.load(str(results["mlx"].path))
    tuned, _ = mlx_lm.load(str(default_model_dir), adapter_path=str(run / "adapters" / "best"))
    tuned = dequantize(tuned)  # the adapter was trained on the fp32-dequantized base
    prompts = [chat_prompt(tokenizer, [{"role": "user", "content": q}])
               for q in ("What is the capital of France?", "Write a tagline for a bakery.")]
    for prompt in prompts:
        want = mlx_lm.generate(tuned, tokenizer, prompt, max_tokens=16)
        assert mlx_lm.generate(merged, tokenizer, prompt, max_tokens=16) == want
