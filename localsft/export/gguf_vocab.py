"""The tokenizer as llama.cpp stores it in a GGUF file, from the base's tokenizer.json.

Two kinds: byte-level BPE (GPT-2 style: SmolLM, Llama 3, Qwen), stored as llama.cpp's "gpt2"
model with merges and a pre-tokenizer name; and SentencePiece-style BPE with byte fallback
(Gemma, Mistral, Phi-3), stored as llama.cpp's "llama" model: tokens with their scores
(merge priority: a lower id merges first, as in the SentencePiece model) and byte tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

from localsft.errors import UserError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def _pre_tokenizer_name(spec: dict | None) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenization rule (what our importer reads back)."""
    text = json.dumps(spec or {})
    if '"individual_digits": true' in text:
        return "smollm"
    if "\\\\p{N}{1,3}" in text:
        return "llama-bpe"
    if "\\\\p{N}" in text and "\\\\p{L}" in text:  # Qwen 2's split rule (digits one by one)
        return "qwen2"
    return "gpt-2"


def tokenizer_kind(spec: dict) -> str:
    """"gpt2" (byte-level BPE) or "llama" (SentencePiece-style BPE), or a UserError naming what it is."""
    model = spec.get("model", {})
    if model.get("type") == "BPE" and "ByteLevel" in json.dumps(spec.get("pre_tokenizer")):
        return "gpt2"
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        return "llama"
    raise UserError(f"The GGUF export handles byte-level BPE tokenizers (SmolLM, Llama 3, Qwen) and "
                    f"SentencePiece-style BPE with byte fallback (Gemma, Mistral, Phi-3); this model's "
                    f"tokenizer is {model.get('type', 'unknown')}. Export `hf` and convert it with llama.cpp's "
                    f"convert_hf_to_gguf.py.")


def _adds_space_prefix(spec: dict) -> bool:
    """SentencePiece's add_dummy_prefix, as tokenizers writes it (Metaspace scheme or a Prepend normalizer)."""
    text = json.dumps([spec.get("normalizer"), spec.get("pre_tokenizer")])
    return '"Prepend"' in text or '"prepend_scheme": "first"' in text or '"prepend_scheme": "always"' in text


def tokenizer_metadata(base_path: Path, vocab_size: int) -> dict:
    """model kind, tokens, token types, scores or merges, and settings, from `base_path/tokenizer.json`."""
    path = base_path / "tokenizer.json"
    spec = json.loads(path.read_text()) if path.exists() else {}
    kind = tokenizer_kind(spec)
    model = spec["model"]
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [UNUSED] * vocab_size
    for token, i in model["vocab"].items():
        if i < vocab_size:
            tokens[i] = token
            is_byte = kind == "llama" and len(token) == 6 and token.startswith("<0x") and token.endswith(">")
            types[i] = BYTE if is_byte else NORMAL
    for added in spec.get("added_tokens", []):
        if added["id"] < vocab_size:
            tokens[added["id"]] = added["content"]
            types[added["id"]] = CONTROL if added.get("special") else USER_DEFINED
    if kind == "llama" and model.get("unk_token") in model["vocab"]:
        types[model["vocab"][model["unk_token"]]] = UNKNOWN
    meta = {"model": kind, "tokens": tokens, "types": types}
    if kind == "gpt2":
        meta["merges"] = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
        meta["pre"] = _pre_tokenizer_name(spec.get("pre_tokenizer"))
    else:
        meta["scores"] = [-float(i) if t == NORMAL else 0.0 for i, t in enumerate(types)]
        meta["add_space_prefix"] = _adds_space_prefix(spec)
    return meta
