"""`gguf` export: one GGUF file (f16; q8_0 with --quantize 8; f32 with --dtype float32) for llama.cpp,
Ollama and LM Studio.

Written with the `gguf` package (llama.cpp's own writer library), in llama.cpp's names and
conventions for each architecture (q/k row order for llama, 1 + w norms for Gemma, fused
qkv and gate-up matrices for Phi-3, which mlx-lm keeps fused too). The
tokenizer (gguf_vocab.py), special ids and the chat template go with it, so llama.cpp
tokenizes and formats chats like the base model.
An Ollama Modelfile is written beside it (see ollama.py).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import numpy as np

from localsft.errors import UserError
from localsft.export.gguf_vocab import tokenizer_metadata
from localsft.export.layout import adds_bos, chat_template, end_of_turn_ids
from localsft.export.merge import Tuned, base_license, float_weights, load_exported
from localsft.export.ollama import write_modelfile
from localsft.models.gguf_names import to_gguf
from localsft.models.rope_scaling import LONGROPE, llama3_factors, longrope, scaling_kind

# model_type -> (llama.cpp architecture, q/k rows permuted for llama.cpp's interleaved RoPE,
#                norm weights stored as 1 + w: Gemma's RMSNorm scales by 1 + w, llama.cpp's by w)
ARCHITECTURES = {"llama": ("llama", True, False), "mistral": ("llama", True, False),
                 "qwen2": ("qwen2", False, False), "qwen3": ("qwen3", False, False),
                 "gemma2": ("gemma2", False, True), "gemma3_text": ("gemma3", False, True),
                 "phi3": ("phi3", False, False)}
SUPPORTED = tuple(ARCHITECTURES)
def tensor_type(tuned: Tuned, bits: int | None) -> str:
    """q8_0 when re-quantizing to 8 bits, f32 when fp32 was asked for, else f16."""
    return "q8_0" if bits == 8 else "f32" if tuned.save_dtype == "float32" else "f16"


def _tensors(tuned: Tuned) -> dict[str, np.ndarray]:
    """llama.cpp tensor names -> fp32 numpy arrays, in llama.cpp's conventions for the architecture."""
    from mlx_lm.gguf import permute_weights

    model_type = tuned.base_config["model_type"]
    _, permute, norm_plus_one = ARCHITECTURES[model_type]
    heads = tuned.base_config["num_attention_heads"]
    kv_heads = tuned.base_config.get("num_key_value_heads", heads)
    out = {}
    for name, value in float_weights(tuned.model, "float32").items():
        if permute and name.endswith("self_attn.q_proj.weight"):
            value = permute_weights(value, heads, heads)
        elif permute and name.endswith("self_attn.k_proj.weight"):
            value = permute_weights(value, heads, kv_heads)
        elif norm_plus_one and name.endswith("norm.weight"):
            value = value + 1
        out[to_gguf(name, model_type)] = np.array(value)
    if scaling_kind(tuned.base_config) == "llama3":  # Llama 3.1+: llama.cpp reads the scaling as a tensor
        out["rope_freqs.weight"] = llama3_factors(tuned.base_config)
    elif scaling_kind(tuned.base_config) in LONGROPE:  # Phi-3.5 and the 128k Phi-3s
        out["rope_factors_long.weight"] = out["rope_factors_short.weight"] = longrope(tuned.base_config)[0]
    return out


# llama.cpp gives a model whose general.name contains "phi3" or "phi-3" (any case, any architecture)
# Phi-3's tokenizer rules, looking these tokens up by text: without one of them it refuses to load
# the file ("error loading model vocabulary: _Map_base::at").
_PHI3_RULE_TOKENS = ("<unk>", "<s>", "</s>", "<|endoftext|>")


def file_name(tuned: Tuned) -> str:
    """general.name: the tuned model's name, with "Phi-3" spelt so llama.cpp loads it if its rules cannot apply."""
    name = tuned.name or f"{tuned.base_path.name} (tuned)"  # the tuned model, not its base
    vocab = tuned.tokenizer.get_vocab()
    if not all(token in vocab for token in _PHI3_RULE_TOKENS):
        name = re.sub(r"(?i)phi-?3", "Phi 3", name)
    return name


def _add_hparams(writer, tuned: Tuned, kind: str) -> None:
    import gguf

    c = tuned.base_config
    heads = c["num_attention_heads"]
    writer.add_name(file_name(tuned))
    if base_license(tuned):
        writer.add_license(base_license(tuned))
    writer.add_context_length(c.get("max_position_embeddings", 4096))
    writer.add_embedding_length(c["hidden_size"])
    writer.add_block_count(c["num_hidden_layers"])
    writer.add_feed_forward_length(c["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(c.get("num_key_value_heads", heads))
    writer.add_layer_norm_rms_eps(c.get("rms_norm_eps", 1e-5))
    writer.add_rope_freq_base(c.get("rope_theta", 10000.0))
    writer.add_vocab_size(c["vocab_size"])
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(int(head_dim * c.get("partial_rotary_factor", 1.0)))
    if scaling_kind(c) == "linear":  # Gemma 3 4B and up (its global layers)
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(c["rope_scaling"]["factor"])
    _add_family_hparams(writer, c)
    name = {"F32": "ALL_F32", "Q3_K": "MOSTLY_Q3_K_M", "Q4_K": "MOSTLY_Q4_K_M", "Q5_K": "MOSTLY_Q5_K_M"}
    writer.add_file_type(gguf.LlamaFileType[name.get(kind.upper(), f"MOSTLY_{kind.upper()}")])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_family_hparams(writer, c: dict) -> None:
    """The keys llama.cpp reads for one architecture only (what its converter writes for it)."""
    if c["model_type"] == "gemma2":
        writer.add_attn_logit_softcapping(c.get("attn_logit_softcapping") or 50.0)
        writer.add_final_logit_softcapping(c.get("final_logit_softcapping") or 30.0)
        writer.add_sliding_window(c.get("sliding_window") or 4096)
    elif c["model_type"] == "gemma3_text":
        # local (sliding) layers have their own RoPE base; every n-th layer is global (n = the pattern)
        writer.add_sliding_window(c.get("sliding_window") or 512)
        writer.add_sliding_window_pattern(c.get("sliding_window_pattern", 6))
        writer.add_rope_freq_base_swa(c.get("rope_local_base_freq", 10000.0))
        if c.get("final_logit_softcapping"):
            writer.add_final_logit_softcapping(c["final_logit_softcapping"])
    elif c["model_type"] == "phi3":
        writer.add_sliding_window(c.get("sliding_window") or 0)  # 0: no window (llama.cpp's reading)
        writer.add_rope_scaling_orig_ctx_len(c.get("original_max_position_embeddings")
                                             or c.get("max_position_embeddings", 4096))
        if scaling_kind(c) in LONGROPE:
            writer.add_rope_scaling_attn_factors(longrope(c)[1])


def _add_tokenizer(writer, tuned: Tuned) -> None:
    meta = tokenizer_metadata(tuned.base_path, tuned.base_config["vocab_size"])
    writer.add_tokenizer_model(meta["model"])
    writer.add_token_list(meta["tokens"])
    writer.add_token_types(meta["types"])
    if meta["model"] == "gpt2":
        writer.add_tokenizer_pre(meta["pre"])
        writer.add_token_merges(meta["merges"])
    else:
        writer.add_tokenizer_pre("default")
        writer.add_token_scores(meta["scores"])
        writer.add_add_space_prefix(meta["add_space_prefix"])
    vocab = tuned.tokenizer.get_vocab()
    hf = getattr(tuned.tokenizer, "_tokenizer", tuned.tokenizer)
    eos = end_of_turn_ids(tuned.tokenizer, tuned.base_config)
    config_eos = tuned.base_config.get("eos_token_id")
    writer.add_eos_token_id(int(config_eos[0] if isinstance(config_eos, list) else config_eos or eos[0]))
    for add, token in ((writer.add_bos_token_id, hf.bos_token), (writer.add_pad_token_id, hf.pad_token),
                       (writer.add_unk_token_id, hf.unk_token)):
        if token in vocab:
            add(vocab[token])
    writer.add_add_bos_token(adds_bos(tuned))
    if chat_template(tuned.tokenizer):
        writer.add_chat_template(chat_template(tuned.tokenizer))


def write_file(tuned: Tuned, path: Path, kind: str, quantize: Callable | None = None) -> None:
    """Write the (fused) model as one GGUF file whose matrices are of type `kind` (a GGML type name).

    quantize(name, array, qtype) -> (raw blocks, their type): default the gguf package's quantizer (it
    has none for the K-quants; tests bring their own, and mix types as Q4_K_M does). Vectors stay f32.
    """
    import gguf

    model_type = tuned.base_config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise UserError(f"The GGUF export handles {', '.join(SUPPORTED)} models; this base is "
                        f"{model_type!r}. Export `hf` and convert it with llama.cpp's convert_hf_to_gguf.py.")
    if scaling_kind(tuned.base_config) not in ("default", "linear", "llama3", *LONGROPE) or \
            scaling_kind(tuned.base_config) in LONGROPE and model_type != "phi3":
        raise UserError(f"The GGUF export writes linear, Llama 3 and Phi-3 RoPE scaling; this base uses "
                        f"{scaling_kind(tuned.base_config)!r} (its config.json's rope_scaling). Export `hf` and "
                        f"convert it with llama.cpp's convert_hf_to_gguf.py.")
    qtype = gguf.GGMLQuantizationType[kind.upper()]
    quantize = quantize or (lambda _name, array, qtype: (gguf.quants.quantize(array, qtype), qtype))
    writer = gguf.GGUFWriter(str(path), ARCHITECTURES[model_type][0])
    _add_hparams(writer, tuned, kind)
    _add_tokenizer(writer, tuned)
    for name, array in _tensors(tuned).items():
        if array.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, array.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, array.astype(np.float16))
        else:
            raw, raw_type = quantize(name, array, qtype)
            writer.add_tensor(name, raw, raw_dtype=raw_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write(tuned: Tuned, out: Path, bits: int | None = None) -> None:
    """The `gguf` export: model-<type>.gguf and its Ollama Modelfile in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    kind = tensor_type(tuned, bits)
    write_file(tuned, out / f"model-{kind}.gguf", kind)
    write_modelfile(tuned, out, f"model-{kind}.gguf")


def reload(tuned: Tuned, out: Path):
    """The GGUF file read back with localsft's GGUF importer, its weights as stored (f16, q8_0 as 8-bit).

    The closest MLX gets to llama.cpp's own arithmetic; the tests also run the file in real llama.cpp.
    """
    import mlx_lm

    from localsft.models.gguf_import import import_gguf

    with tempfile.TemporaryDirectory() as tmp:
        import_gguf(next(out.glob("*.gguf")), Path(tmp))
        return load_exported(Path(tmp))
