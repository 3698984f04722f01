"""Tensor names: Hugging Face / mlx-lm on one side, llama.cpp's GGUF names on the other (one table, both ways)."""

from __future__ import annotations

from localsft.errors import UserError

_LAYER = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
          "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
          "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
          "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
# Gemma 2 has four norms per block: llama.cpp's ffn_norm is the one before the MLP
_GEMMA = {"post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
          "post_feedforward_layernorm": "post_ffw_norm"}
# Phi-3 keeps q, k, v in one matrix and gate and up in another (gate rows first), as llama.cpp does
_PHI3 = {"self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up"}
_TOP = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}


def _layer_names(model_type: str) -> dict[str, str]:
    if model_type == "phi3":
        return {**{k: v for k, v in _LAYER.items() if v not in _PHI3.values()}, **_PHI3}
    return {**_LAYER, **(_GEMMA if model_type.startswith("gemma") else {})}


def to_gguf(name: str, model_type: str) -> str:
    """llama.cpp's name for an mlx-lm tensor name (`model.layers.0.self_attn.q_proj.weight` -> `blk.0.attn_q.weight`)."""
    module, _, suffix = name.rpartition(".")
    if module.startswith("model.layers."):
        _, _, layer, part = module.split(".", 3)
        names = _layer_names(model_type)
        if part in names:
            return f"blk.{layer}.{names[part]}.{suffix}"
    elif module in _TOP:
        return f"{_TOP[module]}.{suffix}"
    raise UserError(f"The GGUF export does not know where llama.cpp keeps {name}.")


def from_gguf(name: str, model_type: str) -> str:
    """The mlx-lm tensor name of a GGUF tensor (the inverse of `to_gguf`)."""
    stem, _, suffix = name.rpartition(".")
    if stem.startswith("blk."):
        _, layer, part = stem.split(".", 2)
        names = {v: k for k, v in _layer_names(model_type).items()}
        if part in names:
            return f"model.layers.{layer}.{names[part]}.{suffix}"
    else:
        top = {v: k for k, v in _TOP.items()}
        if stem in top:
            return f"{top[stem]}.{suffix}"
    raise UserError(f"Unexpected tensor in GGUF file: {name}")
