"""`gguf` export: one GGUF file (f16; q8_0 with --quantize 8; f32 with --dtype float32) for llama.cpp,
Ollama and LM Studio.

Written with the `gguf` package (llama.cpp's own writer library). Tensor names and
llama.cpp's q/k row permutation come from mlx-lm's GGUF helpers; the tokenizer is
stored as llama.cpp's byte-level BPE ("gpt2") with merges, token types, special ids
and the chat template, so llama.cpp tokenizes and formats chats like the base model.
An Ollama Modelfile is written beside it (see ollama.py).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from localsft.errors import UserError
from localsft.export.layout import chat_template, end_of_turn_ids
from localsft.export.merge import Tuned, base_license, float_weights, load_base
from localsft.export.ollama import write_modelfile

SUPPORTED = ("llama", "mistral")
_CONTROL, _USER_DEFINED, _NORMAL, _UNUSED = 3, 4, 1, 5


def tensor_type(tuned: Tuned, bits: int | None) -> str:
    """q8_0 when re-quantizing to 8 bits, f32 when fp32 was asked for, else f16."""
    return "q8_0" if bits == 8 else "f32" if tuned.save_dtype == "float32" else "f16"


def _pre_tokenizer_name(spec: dict | None) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenization rule (what our importer reads back)."""
    text = json.dumps(spec or {})
    if '"individual_digits": true' in text:
        return "smollm"
    if "\\\\p{N}{1,3}" in text:
        return "llama-bpe"
    return "gpt-2"


def tokenizer_metadata(tuned: Tuned) -> dict:
    """tokens, token types, merges and the pre-tokenizer name from the base's tokenizer.json."""
    path = tuned.base_path / "tokenizer.json"
    spec = json.loads(path.read_text()) if path.exists() else {}
    model = spec.get("model", {})
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(spec.get("pre_tokenizer")):
        raise UserError("The GGUF export handles byte-level BPE tokenizers (GPT-2 style, as in SmolLM, "
                        "Llama 3, Qwen); this model's tokenizer is another kind. Export `hf` and convert it "
                        "with llama.cpp's convert_hf_to_gguf.py.")
    size = tuned.base_config["vocab_size"]
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [_UNUSED] * size
    for token, i in model["vocab"].items():
        if i < size:
            tokens[i], types[i] = token, _NORMAL
    for added in spec.get("added_tokens", []):
        if added["id"] < size:
            tokens[added["id"]] = added["content"]
            types[added["id"]] = _CONTROL if added.get("special") else _USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokens": tokens, "types": types, "merges": merges, "pre": _pre_tokenizer_name(spec.get("pre_tokenizer"))}


def _tensors(tuned: Tuned) -> dict[str, np.ndarray]:
    """llama.cpp tensor names -> fp32 numpy arrays (q/k rows permuted as llama.cpp expects)."""
    from mlx_lm.gguf import permute_weights, translate_weight_names

    heads = tuned.base_config["num_attention_heads"]
    kv_heads = tuned.base_config.get("num_key_value_heads", heads)
    out = {}
    for name, value in float_weights(tuned.model, "float32").items():
        if name.endswith("self_attn.q_proj.weight"):
            value = permute_weights(value, heads, heads)
        elif name.endswith("self_attn.k_proj.weight"):
            value = permute_weights(value, heads, kv_heads)
        out[translate_weight_names(name)] = np.array(value)
    return out


def _add_hparams(writer, tuned: Tuned, kind: str) -> None:
    import gguf

    c = tuned.base_config
    heads = c["num_attention_heads"]
    writer.add_name(tuned.name or f"{tuned.base_path.name} (tuned)")  # the tuned model, not its base
    if base_license(tuned):
        writer.add_license(base_license(tuned))
    writer.add_context_length(c.get("max_position_embeddings", 4096))
    writer.add_embedding_length(c["hidden_size"])
    writer.add_block_count(c["num_hidden_layers"])
    writer.add_feed_forward_length(c["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(c.get("num_key_value_heads", heads))
    writer.add_rope_dimension_count(c.get("head_dim") or c["hidden_size"] // heads)
    writer.add_layer_norm_rms_eps(c.get("rms_norm_eps", 1e-5))
    writer.add_rope_freq_base(c.get("rope_theta", 10000.0))
    writer.add_vocab_size(c["vocab_size"])
    file_types = {"q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "f16": gguf.LlamaFileType.MOSTLY_F16,
                  "f32": gguf.LlamaFileType.ALL_F32}
    writer.add_file_type(file_types[kind])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_tokenizer(writer, tuned: Tuned) -> None:
    meta = tokenizer_metadata(tuned)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(meta["pre"])
    writer.add_token_list(meta["tokens"])
    writer.add_token_types(meta["types"])
    writer.add_token_merges(meta["merges"])
    vocab = tuned.tokenizer.get_vocab()
    hf = getattr(tuned.tokenizer, "_tokenizer", tuned.tokenizer)
    eos = end_of_turn_ids(tuned.tokenizer, tuned.base_config)
    config_eos = tuned.base_config.get("eos_token_id")
    writer.add_eos_token_id(int(config_eos[0] if isinstance(config_eos, list) else config_eos or eos[0]))
    for add, token in ((writer.add_bos_token_id, hf.bos_token), (writer.add_pad_token_id, hf.pad_token),
                       (writer.add_unk_token_id, hf.unk_token)):
        if token in vocab:
            add(vocab[token])
    bos = vocab.get(hf.bos_token) if hf.bos_token else None
    writer.add_add_bos_token(bos is not None and list(tuned.tokenizer.encode("a"))[:1] == [bos])
    if chat_template(tuned.tokenizer):
        writer.add_chat_template(chat_template(tuned.tokenizer))


def write(tuned: Tuned, out: Path, bits: int | None = None) -> None:
    import gguf

    if tuned.base_config.get("model_type") not in SUPPORTED:
        raise UserError(f"The GGUF export handles {', '.join(SUPPORTED)} models; this base is "
                        f"{tuned.base_config.get('model_type')!r}. Export `hf` and convert it with llama.cpp.")
    out.mkdir(parents=True, exist_ok=True)
    kind = tensor_type(tuned, bits)
    path = out / f"model-{kind}.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    _add_hparams(writer, tuned, kind)
    _add_tokenizer(writer, tuned)
    for name, array in _tensors(tuned).items():
        if array.ndim == 1 or kind == "f32":  # norms stay f32, as llama.cpp keeps them
            writer.add_tensor(name, array.astype(np.float32))
        elif kind == "q8_0":
            qtype = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(name, array.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    write_modelfile(tuned, out, path.name)


def reload(tuned: Tuned, out: Path):
    """The GGUF file read back with localsft's GGUF importer (as `localsft models add` would)."""
    from localsft.models.gguf_import import import_gguf

    with tempfile.TemporaryDirectory() as tmp:
        import_gguf(next(out.glob("*.gguf")), Path(tmp))
        model, tokenizer, *_ = load_base(Path(tmp))
    return model, tokenizer
