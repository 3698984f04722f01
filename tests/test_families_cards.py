"""Model cards as the Hugging Face Hub reads them: library names it knows, a pipeline tag, honest tags,
and instructions that work offline on the local base."""

from __future__ import annotations

import yaml

from localsft.export import export_run


def _front(card: str) -> dict:
    return yaml.safe_load(card.split("---")[1])


def test_cards_name_hub_libraries_and_tag_only_adapters_with_the_method(tiny_run, tmp_path):
    results = {r.fmt: r for r in export_run(tiny_run, "adapter,peft,mlx,gguf", out=tmp_path, force=True)}
    fronts = {fmt: _front((r.path / "README.md").read_text()) for fmt, r in results.items()}
    assert {fmt: f.get("library_name") for fmt, f in fronts.items()} == \
        {"adapter": "mlx", "peft": "peft", "mlx": "mlx", "gguf": None}  # the Hub finds .gguf files itself
    assert all(f["pipeline_tag"] == "text-generation" for f in fronts.values())
    assert "lora" in fronts["adapter"]["tags"] and "lora" in fronts["peft"]["tags"]
    assert "lora" not in fronts["mlx"]["tags"] and "lora" not in fronts["gguf"]["tags"]  # merged: a plain model


def test_adapter_cards_say_how_to_load_them_on_the_local_base(tiny_run, tiny_model_dir, tmp_path):
    results = {r.fmt: r for r in export_run(tiny_run, "adapter,peft", out=tmp_path)}
    adapter = (results["adapter"].path / "README.md").read_text()
    offline = adapter.split("offline", 1)[1]
    assert tiny_model_dir.name in offline.split("\n")[1] and "--adapter-path" in offline
    peft = (results["peft"].path / "README.md").read_text()
    offline = peft.split("offline", 1)[1]
    assert "AutoModelForCausalLM.from_pretrained(" in offline and tiny_model_dir.name in offline
