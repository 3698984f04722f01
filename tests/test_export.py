"""Merge and export on the tiny model: every format is written, checked and usable."""

from __future__ import annotations

import json

import mlx.core as mx
import pytest
from test_export_runs import HELD_OUT, make_run, tiny_run  # noqa: F401  (fixture)

from localsft.cli import main
from localsft.errors import UserError
from localsft.export import ExportCheckFailed, export_run
from localsft.export.peft import from_peft, to_peft


def _greedy(model, tokenizer, messages, max_tokens=12):
    from mlx_lm import generate

    from localsft.inference.generate import chat_prompt

    return generate(model, tokenizer, chat_prompt(tokenizer, messages), max_tokens=max_tokens)


def test_all_formats_are_written_checked_and_carded(tiny_run):
    results = export_run(tiny_run, "all")
    assert [r.fmt for r in results] == ["adapter", "peft", "mlx", "hf", "gguf"]
    for result in results:
        assert result.path == tiny_run / "exports" / result.fmt
        assert result.check.passed, result.check.summary()
        assert result.check.greedy_agreement == 1.0
        assert result.check.adapter_effect > 0.05  # the adapter really changes the model
        saved = json.loads((result.path / "localsft-export.json").read_text())
        assert saved["passed"] and saved["positions"] > 50
        card = (result.path / "README.md").read_text()
        assert "## Method and hyperparameters" in card and "| lora_rank | 4 |" in card
        assert "| examples | 300 |" in card  # data statistics ...
        assert "SECRET EXAMPLE TEXT" not in card and "Light, fast, yours" not in card  # ... never the data
        assert "## Export check" in card and "## How to use" in card
        assert not list(tiny_run.glob("exports/.*"))  # no partial folders left
    by_fmt = {r.fmt: r for r in results}
    assert by_fmt["adapter"].check.max_abs_diff == 0.0
    assert by_fmt["mlx"].check.max_abs_diff < 1e-4  # fp32 base: merged weights are exact
    assert {"Modelfile", "model-f32.gguf"} <= set(by_fmt["gguf"].files)  # the tiny model is fp32
    assert "lms import" in by_fmt["gguf"].usage


def test_mlx_export_loads_with_mlx_lm_and_answers_like_the_adapter(tiny_run, tiny_model_dir):
    import mlx_lm

    (result,) = export_run(tiny_run, "mlx")
    merged, tokenizer = mlx_lm.load(str(result.path))
    tuned, _ = mlx_lm.load(str(tiny_model_dir), adapter_path=str(tiny_run / "adapters" / "best"))
    base, _ = mlx_lm.load(str(tiny_model_dir))
    answers = [_greedy(merged, tokenizer, m[:1]) for m in HELD_OUT]
    assert answers == [_greedy(tuned, tokenizer, m[:1]) for m in HELD_OUT]
    assert answers != [_greedy(base, tokenizer, m[:1]) for m in HELD_OUT]
    config = json.loads((result.path / "config.json").read_text())
    assert "quantization" not in config
    generation = json.loads((result.path / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_requantized_export_that_loses_the_adapter_is_refused_loudly(tiny_model_dir, tmp_path):
    run = make_run(tmp_path / "run", tiny_model_dir, strength=0.003)  # a faint adapter 4 bits wipe out
    out = tmp_path / "q4"
    with pytest.raises(ExportCheckFailed, match="not written.*adapter effect kept"):
        export_run(run, "mlx", out=out, quantize=4)
    assert not out.exists()
    (forced,) = export_run(run, "mlx", out=out, quantize=4, force=True)
    assert not forced.check.passed
    assert "FAILED" in (out / "README.md").read_text()
    assert json.loads((out / "config.json").read_text())["quantization"]["bits"] == 4


def test_requantized_8bit_export_keeps_the_adapter(tiny_run):
    (result,) = export_run(tiny_run, "mlx", quantize=8)
    assert result.check.passed, result.check.summary()
    assert json.loads((result.path / "config.json").read_text())["quantization"]["bits"] == 8


def test_peft_mapping_round_trips():
    weights = {"model.layers.3.self_attn.q_proj.lora_a": mx.random.normal((64, 4)),
               "model.layers.3.self_attn.q_proj.lora_b": mx.random.normal((4, 32))}
    peft, modules, layers = to_peft(weights)
    assert peft["base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"].shape == (4, 64)
    assert peft["base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight"].shape == (32, 4)
    assert modules == ["self_attn.q_proj"] and layers == [3]
    back = from_peft(peft)
    assert all(mx.array_equal(back[k], weights[k]).item() for k in weights)


def test_peft_config_has_the_right_scale_and_targets(tiny_run):
    (result,) = export_run(tiny_run, "peft")
    config = json.loads((result.path / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 32.0  # scale 8 x rank 4
    assert config["target_modules"] == ["mlp.down_proj", "self_attn.q_proj", "self_attn.v_proj"]
    assert config["layers_to_transform"] == [0, 1]
    assert config["peft_type"] == "LORA" and config["base_model_name_or_path"]


def test_user_mistakes_are_plain_messages(tiny_run, tmp_path):
    with pytest.raises(UserError, match="Unknown export format"):
        export_run(tiny_run, "onnx")
    with pytest.raises(UserError, match="does not apply to the peft format"):
        export_run(tiny_run, "peft", quantize=4)
    with pytest.raises(UserError, match="not a localsft run folder"):
        export_run(tmp_path, "mlx")


def test_cli_export_prints_the_check_and_how_to_use(tiny_run, tmp_path, capsys):
    assert main(["export", str(tiny_run), "--format", "gguf", "--out", str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    assert "fuse check ok" in out and "ollama create" in out and "lms import" in out
    assert (tmp_path / "g" / "Modelfile").exists()
    assert main(["export", str(tmp_path), "--format", "mlx"]) == 2
    assert "not a localsft run folder" in capsys.readouterr().err


def test_quantized_base_is_merged_in_full_precision_and_the_card_says_so(tmp_path):
    from tiny_model import make_tiny_model

    model_dir = make_tiny_model(tmp_path / "tiny-q4", quantize=True)
    run = make_run(tmp_path / "run", model_dir)
    adapter, mlx = export_run(run, "adapter,mlx")
    assert mlx.check.passed and mlx.check.max_abs_diff < 1e-3  # merged into fp32, not re-quantized
    assert "quantization" not in json.loads((mlx.path / "config.json").read_text())
    assert "trained on a 4-bit copy" in (adapter.path / "README.md").read_text()
    assert str(tmp_path) not in (mlx.path / "README.md").read_text().split("## How to use")[0]


def test_card_has_the_eval_table_but_not_the_eval_answers(tiny_run):
    eval_json = {"run": "run", "data": "data/test.jsonl", "examples": 3, "retention": 0.98,
                 "base": {"loss": 2.5, "exact_match": 0.0, "chrf": None},
                 "tuned": {"loss": 1.25, "exact_match": 0.67, "chrf": 41.5},
                 "format_check": None, "items": [{"prompt": "SECRET PROMPT", "tuned": "SECRET ANSWER"}],
                 "probes": [{"question": "SECRET QUESTION", "base": True, "tuned": True}]}
    (tiny_run / "eval.json").write_text(json.dumps(eval_json))
    (result,) = export_run(tiny_run, "adapter")
    card = (result.path / "README.md").read_text()
    assert "| metric | base | tuned |" in card and "| loss | 2.5 | 1.25 |" in card
    assert "| exact_match | 0 | 0.67 |" in card and "| chrf |  | 41.5 |" in card and "examples: 3, retention: 0.98" in card
    assert "SECRET" not in card


def test_dora_adapter_is_fused_and_peft_says_it_cannot(tiny_model_dir, tmp_path):
    run = make_run(tmp_path / "run", tiny_model_dir, fine_tune_type="dora")
    adapter, mlx = export_run(run, "adapter,mlx")
    assert mlx.check.passed and mlx.check.max_abs_diff < 1e-4 and mlx.check.adapter_effect > 0.05
    with pytest.raises(UserError, match="PEFT export handles LoRA adapters"):
        export_run(run, "peft")


def test_full_fine_tune_exports_its_weights(tiny_model_dir, tmp_path):
    import mlx_lm
    from mlx.utils import tree_flatten

    run = make_run(tmp_path / "run", tiny_model_dir)
    model, _ = mlx_lm.load(str(tiny_model_dir))
    mx.random.seed(3)
    weights = {k: v + 0.05 * mx.random.normal(v.shape) for k, v in tree_flatten(model.parameters())}
    best = run / "adapters" / "best"
    mx.save_safetensors(str(best / "adapters.safetensors"), weights)
    (best / "adapter_config.json").write_text(json.dumps({"fine_tune_type": "full", "num_layers": 2,
                                                         "lora_parameters": {"rank": 4, "scale": 8.0}}))
    mlx, hf = export_run(run, "mlx,hf")
    assert mlx.check.passed and mlx.check.max_abs_diff < 1e-4 and mlx.check.adapter_effect > 0.05
    saved = mx.load(str(hf.path / "model.safetensors"))
    assert mx.allclose(saved["model.layers.0.mlp.up_proj.weight"], weights["model.layers.0.mlp.up_proj.weight"]).item()


def test_export_never_replaces_a_folder_that_is_not_an_export(tiny_run, tmp_path):
    precious = tmp_path / "Documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(UserError, match="not a localsft export"):
        export_run(tiny_run, "adapter", out=precious)
    assert (precious / "thesis.txt").read_text() == "years of work"
    export_run(tiny_run, "adapter", out=tmp_path / "a")
    (again,) = export_run(tiny_run, "adapter", out=tmp_path / "a")  # an earlier export is replaced
    assert again.check.passed


def test_a_refused_format_does_not_stop_the_others(tiny_model_dir, tmp_path):
    run = make_run(tmp_path / "run", tiny_model_dir, strength=0.003)
    with pytest.raises(ExportCheckFailed, match=r"mlx export was not written.*Written: adapter .*hf "):
        export_run(run, "adapter,mlx,hf", quantize=4)
    assert (run / "exports" / "hf" / "README.md").exists() and not (run / "exports" / "mlx").exists()
