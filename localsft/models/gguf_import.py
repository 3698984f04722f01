"""Import a `.gguf` file (what Ollama and LM Studio users have) as an MLX model folder.

Architectures: llama (Llama 3, Mistral, SmolLM), qwen2, qwen3, gemma2, gemma3, phi3. MLX reads
Q4_0/Q4_1/Q8_0 tensors natively as MLX affine-quantized triples (weight, scales, biases;
group size 32), F16/BF16/F32 as plain arrays; files with other types (the K-quants of
Q4_K_M and friends) are read with the `gguf` package and dequantized to fp16. We rename
tensors to the Hugging Face / mlx-lm layout, undo llama.cpp's conventions (q/k row order
for llama, 1 + w norms for Gemma) and rebuild the tokenizer and chat template from the
file's metadata. The result loads with `mlx_lm.load`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import mlx.core as mx
import numpy as np

from localsft.errors import UserError
from localsft.models.gguf_names import from_gguf
from localsft.models.rope_scaling import llama3_scaling
from localsft.models.tokenizer_build import write_tokenizer

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3")
GGUF_GROUP_SIZE = 32  # every GGUF block type MLX reads has 32 weights per block
# Types mx.load reads right (Q4_0/Q4_1/Q8_0 stay quantized). It also reads K-quants, dequantized by its
# bundled gguflib, but Q4_K blocks came back far from the weights the gguf package (and llama.cpp) read.
MLX_NATIVE_TYPES = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"}
# Tensor types read (dequantized by the gguf package unless MLX reads them natively).
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                   "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")

def read_gguf(path: Path) -> tuple[dict, dict]:
    """Tensors and metadata of a GGUF file, or a UserError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"GGUF file not found: {path}")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise UserError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes).")
    reader = _reader(path)
    if {t.tensor_type.name for t in reader.tensors} <= MLX_NATIVE_TYPES:
        try:
            return mx.load(str(path), return_metadata=True)
        except Exception as err:  # mlx raises RuntimeError/ValueError with C++ text
            raise UserError(f"Could not read {path} as GGUF: the file is truncated, corrupt or not a model "
                            f"({err}).") from None
    return _read_with_gguf_package(path, reader)


def _reader(path: Path):
    from gguf import GGUFReader

    try:
        return GGUFReader(str(path))
    except Exception as err:  # the reader raises ValueError/struct errors on damaged files
        raise UserError(f"Could not read {path} as GGUF: the file is truncated, corrupt or not a model "
                        f"({err}).") from None


def _read_with_gguf_package(path: Path, reader) -> tuple[dict, dict]:
    """Tensors dequantized to fp16 (vectors fp32) and metadata, with the `gguf` package's reader."""
    from gguf.quants import dequantize

    meta = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    weights = {}
    for tensor in reader.tensors:
        kind = tensor.tensor_type.name
        if kind not in SUPPORTED_TYPES:
            raise UserError(f"{path}: tensor {tensor.name} is of type {kind}, which localsft does not read. "
                            f"Supported types: {', '.join(SUPPORTED_TYPES)}.")
        array = dequantize(tensor.data, tensor.tensor_type)
        weights[tensor.name] = mx.array(array.astype(np.float32 if array.ndim == 1 else np.float16))
    return weights, meta


def _scalar(meta: dict, key: str, default=None):
    value = meta.get(key, default)
    if isinstance(value, mx.array):
        value = value.item()
    return value


def _unpermute_rows(tensor: mx.array, n_heads: int) -> mx.array:
    """Undo llama.cpp's per-head interleave of q/k rows (rows are (heads, head_dim/2, 2))."""
    rows = tensor.shape[0]
    head_dim = rows // n_heads
    shaped = tensor.reshape(n_heads, head_dim // 2, 2, *tensor.shape[1:])
    return shaped.swapaxes(1, 2).reshape(tensor.shape)


_MODEL_TYPES = {"llama": ("llama", "LlamaForCausalLM"), "qwen2": ("qwen2", "Qwen2ForCausalLM"),
                "qwen3": ("qwen3", "Qwen3ForCausalLM"), "gemma2": ("gemma2", "Gemma2ForCausalLM"),
                "gemma3": ("gemma3_text", "Gemma3ForCausalLM"), "phi3": ("phi3", "Phi3ForCausalLM")}


def model_config(meta: dict, vocab_size: int, tied: bool) -> dict:
    """The Hugging Face style config.json for a GGUF of one of the supported architectures."""
    arch = _scalar(meta, "general.architecture")
    hidden = _scalar(meta, f"{arch}.embedding_length")
    heads = _scalar(meta, f"{arch}.attention.head_count")
    head_dim = _scalar(meta, f"{arch}.attention.key_length") or _scalar(meta, f"{arch}.rope.dimension_count")
    model_type, architecture = _MODEL_TYPES[arch]
    config = {
        "model_type": model_type,
        "architectures": [architecture],
        "hidden_size": hidden,
        "num_hidden_layers": _scalar(meta, f"{arch}.block_count"),
        "intermediate_size": _scalar(meta, f"{arch}.feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": _scalar(meta, f"{arch}.attention.head_count_kv", heads),
        "head_dim": head_dim or hidden // heads,
        "rms_norm_eps": float(_scalar(meta, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(_scalar(meta, f"{arch}.rope.freq_base", 10000.0)),
        "max_position_embeddings": _scalar(meta, f"{arch}.context_length", 4096),
        "vocab_size": vocab_size,
        "tie_word_embeddings": tied,
        "rope_traditional": False,
        "bos_token_id": _scalar(meta, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _scalar(meta, "tokenizer.ggml.eos_token_id"),
    }
    if _scalar(meta, "tokenizer.ggml.padding_token_id") is not None:  # else transformers assumes its own default
        config["pad_token_id"] = _scalar(meta, "tokenizer.ggml.padding_token_id")
    if _scalar(meta, f"{arch}.rope.scaling.type") == "linear":
        config["rope_scaling"] = {"rope_type": "linear", "factor": float(_scalar(meta, f"{arch}.rope.scaling.factor"))}
    if arch == "llama":
        config.update({"attention_bias": False, "mlp_bias": False})
    if arch == "gemma2":  # llama.cpp scales queries by 1/sqrt(head_dim), as Gemma 2 2B and 9B do
        config.update({"query_pre_attn_scalar": config["head_dim"], "hidden_activation": "gelu_pytorch_tanh",
                       "attn_logit_softcapping": float(_scalar(meta, f"{arch}.attn_logit_softcapping", 50.0)),
                       "final_logit_softcapping": float(_scalar(meta, f"{arch}.final_logit_softcapping", 30.0)),
                       "sliding_window": _scalar(meta, f"{arch}.attention.sliding_window", 4096)})
    if arch == "gemma3":
        config.update(_gemma3_config(meta, config))
    if arch == "phi3":
        rope_dims = _scalar(meta, f"{arch}.rope.dimension_count") or config["head_dim"]
        config.update({"partial_rotary_factor": rope_dims / config["head_dim"],
                       "original_max_position_embeddings": _scalar(
                           meta, f"{arch}.rope.scaling.original_context_length", config["max_position_embeddings"]),
                       "sliding_window": _scalar(meta, f"{arch}.attention.sliding_window") or None})
    return config


def _gemma3_config(meta: dict, config: dict) -> dict:
    """Gemma 3's keys, with llama.cpp's defaults for what the file leaves out (a 5:1 local:global pattern)."""
    # llama.cpp scales queries by 1/sqrt(head_dim), except for the 62-layer 27B (hidden / heads)
    scalar = config["hidden_size"] // config["num_attention_heads"] if config["num_hidden_layers"] == 62 \
        else config["head_dim"]
    return {"query_pre_attn_scalar": scalar, "hidden_activation": "gelu_pytorch_tanh",
            "sliding_window": _scalar(meta, "gemma3.attention.sliding_window", 512),
            "sliding_window_pattern": _scalar(meta, "gemma3.attention.sliding_window_pattern", 6),
            "rope_local_base_freq": float(_scalar(meta, "gemma3.rope.freq_base_swa", 10000.0)),
            "final_logit_softcapping": _scalar(meta, "gemma3.final_logit_softcapping")}


def convert_weights(weights: dict, config: dict) -> tuple[dict, dict | None]:
    """Rename and un-permute tensors; returns (weights, mlx-lm quantization config or None)."""
    model_type = config["model_type"]
    heads = {"q_proj": config["num_attention_heads"], "k_proj": config["num_key_value_heads"]}
    heads = heads if model_type == "llama" else {}  # llama.cpp permutes q/k rows of llama only
    out, bits_of = {}, {}
    for name, tensor in weights.items():
        hf = from_gguf(name, model_type)
        module, _, suffix = hf.rpartition(".")
        proj = module.rsplit(".", 1)[-1]
        if proj in heads:
            tensor = _unpermute_rows(tensor, heads[proj])
        elif model_type.startswith("gemma") and module.endswith("norm"):  # llama.cpp stores Gemma's 1 + w
            tensor = tensor.astype(mx.float32) - 1
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
    factors = weights.pop("rope_freqs.weight", None)  # Llama 3.1+'s RoPE scaling
    config = model_config(meta, len(tokens), tied="output.weight" not in weights)
    if factors is not None:
        config["rope_scaling"] = llama3_scaling(np.array(factors.astype(mx.float32)), config)
    long, short = weights.pop("rope_factors_long.weight", None), weights.pop("rope_factors_short.weight", None)
    if long is not None:  # Phi-3.5's longrope (mlx-lm runs the long factors at every length)
        config["rope_scaling"] = {"type": "longrope", "rope_type": "longrope", "long_factor": long.tolist(),
                                  "short_factor": (short if short is not None else long).tolist()}
    converted, quant = convert_weights(weights, config)
    if quant:
        config["quantization"] = quant
    out_dir.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out_dir / "model.safetensors"), converted, metadata={"format": "mlx"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    write_tokenizer(meta, out_dir, config)
    return config
