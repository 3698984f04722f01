"""Import a `.gguf` file (what Ollama and LM Studio users have) as an MLX model folder.

MLX reads GGUF natively: Q4_0/Q4_1/Q8_0 tensors arrive as MLX affine-quantized
triples (weight, scales, biases; group size 32), F16/F32 as plain arrays. We
rename tensors to the Hugging Face / mlx-lm llama layout, undo llama.cpp's RoPE
row permutation of q and k, and rebuild the tokenizer and chat template from the
file's metadata. The result loads with `mlx_lm.load`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import mlx.core as mx

from localsft.errors import UserError
from localsft.models.tokenizer_build import write_tokenizer

SUPPORTED_ARCHITECTURES = ("llama",)
GGUF_GROUP_SIZE = 32  # every GGUF block type MLX reads has 32 weights per block

_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def read_gguf(path: Path) -> tuple[dict, dict]:
    """Tensors and metadata of a GGUF file, or a UserError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"GGUF file not found: {path}")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise UserError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes).")
    try:
        weights, metadata = mx.load(str(path), return_metadata=True)
    except Exception as err:  # mlx raises RuntimeError/ValueError with C++ text
        raise UserError(f"Could not read {path} as GGUF: the file is truncated, corrupt or uses a "
                        f"tensor type MLX cannot read (Q4_0, Q4_1, Q8_0, F16, F32 work). Detail: {err}") from None
    return weights, metadata


def _scalar(meta: dict, key: str, default=None):
    value = meta.get(key, default)
    if isinstance(value, mx.array):
        value = value.item()
    return value


def _hf_name(gguf_name: str) -> str:
    stem, _, suffix = gguf_name.rpartition(".")
    if stem.startswith("blk."):
        _, layer, part = stem.split(".", 2)
        if part not in _LAYER_NAMES:
            raise UserError(f"Unexpected tensor in GGUF file: {gguf_name}")
        return f"model.layers.{layer}.{_LAYER_NAMES[part]}.{suffix}"
    if stem not in _TOP_NAMES:
        raise UserError(f"Unexpected tensor in GGUF file: {gguf_name}")
    return f"{_TOP_NAMES[stem]}.{suffix}"


def _unpermute_rows(tensor: mx.array, n_heads: int) -> mx.array:
    """Undo llama.cpp's per-head interleave of q/k rows (rows are (heads, head_dim/2, 2))."""
    rows = tensor.shape[0]
    head_dim = rows // n_heads
    shaped = tensor.reshape(n_heads, head_dim // 2, 2, *tensor.shape[1:])
    return shaped.swapaxes(1, 2).reshape(tensor.shape)


def llama_config(meta: dict, vocab_size: int, tied: bool) -> dict:
    """The Hugging Face style config.json for a llama GGUF."""
    hidden = _scalar(meta, "llama.embedding_length")
    heads = _scalar(meta, "llama.attention.head_count")
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": _scalar(meta, "llama.block_count"),
        "intermediate_size": _scalar(meta, "llama.feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": _scalar(meta, "llama.attention.head_count_kv", heads),
        "head_dim": _scalar(meta, "llama.rope.dimension_count", hidden // heads),
        "rms_norm_eps": float(_scalar(meta, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(_scalar(meta, "llama.rope.freq_base", 10000.0)),
        "max_position_embeddings": _scalar(meta, "llama.context_length", 4096),
        "vocab_size": vocab_size,
        "tie_word_embeddings": tied,
        "rope_traditional": False,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": _scalar(meta, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _scalar(meta, "tokenizer.ggml.eos_token_id"),
    }


def convert_weights(weights: dict, config: dict) -> tuple[dict, dict | None]:
    """Rename and un-permute tensors; returns (weights, mlx-lm quantization config or None)."""
    heads = {"q_proj": config["num_attention_heads"], "k_proj": config["num_key_value_heads"]}
    out, bits_of = {}, {}
    for name, tensor in weights.items():
        hf = _hf_name(name)
        module, _, suffix = hf.rpartition(".")
        proj = module.rsplit(".", 1)[-1]
        if proj in heads:
            tensor = _unpermute_rows(tensor, heads[proj])
        out[hf] = tensor
        if suffix == "scales":
            bits_of[module] = weights[name.replace(".scales", ".weight")].shape[-1] // tensor.shape[-1]
    if not bits_of:
        return out, None
    common = Counter(bits_of.values()).most_common(1)[0][0]
    quant: dict = {"group_size": GGUF_GROUP_SIZE, "bits": common, "mode": "affine"}
    for module, bits in bits_of.items():
        if bits != common:
            quant[module] = {"group_size": GGUF_GROUP_SIZE, "bits": bits, "mode": "affine"}
    return out, quant


def import_gguf(path: Path, out_dir: Path) -> dict:
    """Convert a GGUF file into an MLX model folder at `out_dir`; returns its config."""
    path, out_dir = Path(path), Path(out_dir)
    weights, meta = read_gguf(path)
    arch = _scalar(meta, "general.architecture", "unknown")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UserError(f"not supported yet: {arch} (localsft imports GGUF files of these "
                        f"architectures: {', '.join(SUPPORTED_ARCHITECTURES)})")
    tokens = meta.get("tokenizer.ggml.tokens")
    if not tokens:
        raise UserError(f"{path} has no tokenizer in its metadata; cannot import it.")
    config = llama_config(meta, len(tokens), tied="output.weight" not in weights)
    converted, quant = convert_weights(weights, config)
    if quant:
        config["quantization"] = quant
    out_dir.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out_dir / "model.safetensors"), converted, metadata={"format": "mlx"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    write_tokenizer(meta, out_dir, config)
    return config
