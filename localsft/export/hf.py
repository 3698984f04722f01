"""`hf` export: the fused model in Hugging Face transformers layout (safetensors, config, tokenizer)."""

from __future__ import annotations

from pathlib import Path

from localsft.export.layout import save_merged
from localsft.export.merge import Tuned
from localsft.export.mlx import reload as mlx_reload

# mlx-lm's config keys that transformers does not know.
_MLX_ONLY_KEYS = ("rope_traditional", "quantization", "quantization_config")
_ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
                  "qwen3": "Qwen3ForCausalLM", "gemma": "GemmaForCausalLM", "phi3": "Phi3ForCausalLM"}


def hf_config(tuned: Tuned) -> dict:
    """The base config as transformers expects it, with the dtype the weights are saved in."""
    config = {k: v for k, v in tuned.base_config.items() if k not in _MLX_ONLY_KEYS}
    if "architectures" not in config and config.get("model_type") in _ARCHITECTURES:
        config["architectures"] = [_ARCHITECTURES[config["model_type"]]]
    config["dtype"] = tuned.save_dtype
    config.pop("torch_dtype", None)
    return config


def write(tuned: Tuned, out: Path, bits: int | None = None) -> None:
    save_merged(tuned, out, hf_config(tuned))


reload = mlx_reload  # an hf folder is also what mlx-lm reads
