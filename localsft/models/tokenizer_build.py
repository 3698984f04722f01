"""Rebuild a Hugging Face tokenizer (tokenizer.json + config) from GGUF metadata.

Two kinds: byte-level BPE ("gpt2": tokens + merges + a pre-tokenizer name) and
SentencePiece-style BPE ("llama": tokens + scores, byte fallback, Gemma / Mistral / Phi).
For the second, merges are rebuilt from the scores as SentencePiece applies them: the
pair whose merged piece has the best score first.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from localsft.errors import UserError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4  # llama.cpp token types

# llama.cpp pre-tokenizer names whose split rule differs from plain GPT-2.
_DIGITS_EACH = ("smollm",)
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_LLAMA3_NAMES = ("llama3", "llama-v3", "llama-bpe", "smaug-bpe", "dbrx")
_QWEN2_SPLIT = _LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")  # Qwen 2/2.5/3: every digit on its own


def _pre_tokenizer(pre: str | None):
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    if pre in _DIGITS_EACH:
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    if pre in _LLAMA3_NAMES or pre == "qwen2":
        split = pre_tokenizers.Split(Regex(_QWEN2_SPLIT if pre == "qwen2" else _LLAMA3_SPLIT), behavior="isolated")
        no_regex = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)
        return pre_tokenizers.Sequence([split, no_regex])
    return byte_level


def _list(value) -> list:
    return value.tolist() if isinstance(value, mx.array) else list(value if value is not None else [])


def _spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """BPE merges of a SentencePiece vocabulary: every split of a normal piece into two pieces, best score first."""
    ids = {t: i for i, (t, k) in enumerate(zip(tokens, types)) if k == NORMAL}
    found = []
    for piece, i in ids.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                found.append((-scores[i], i, ids[left], ids[right], left, right))
    return [(left, right) for *_, left, right in sorted(found)]


def _spm_tokenizer(meta: dict, tokens: list[str], types: list[int]) -> Tokenizer:
    scores = _list(meta.get("tokenizer.ggml.scores")) or [-float(i) for i in range(len(tokens))]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    unk = next((t for t, k in zip(tokens, types) if k == UNKNOWN), None)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=_spm_merges(tokens, scores, types), unk_token=unk,
                                     fuse_unk=True, byte_fallback=True))
    prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first" if prefix else "never",
                                                       split=False)
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
                                          + ([decoders.Strip(" ", 1, 0)] if prefix else []))
    return tokenizer


def build_bpe_tokenizer(meta: dict) -> Tokenizer:
    """A tokenizer from `tokenizer.ggml.*` metadata: byte-level BPE ("gpt2") or SentencePiece-style ("llama")."""
    kind = meta.get("tokenizer.ggml.model")
    if kind not in ("gpt2", "llama"):
        raise UserError(f"not supported yet: GGUF tokenizer type {kind!r} (byte-level BPE 'gpt2' and "
                        f"SentencePiece-style 'llama' work)")
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = _list(meta.get("tokenizer.ggml.token_type")) or [NORMAL] * len(tokens)
    if kind == "llama":
        tokenizer = _spm_tokenizer(meta, tokens, types)
    else:
        merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
        vocab = {tok: i for i, tok in enumerate(tokens)}
        tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
        tokenizer.pre_tokenizer = _pre_tokenizer(meta.get("tokenizer.ggml.pre"))
        tokenizer.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == CONTROL]
    plain = [AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types) if k == USER_DEFINED]
    tokenizer.add_special_tokens(special)
    tokenizer.add_tokens(plain)
    bos = meta.get("tokenizer.ggml.bos_token_id")
    if bos is not None and bool(meta.get("tokenizer.ggml.add_bos_token", False)):  # encode() starts with BOS
        bos = int(bos.item() if isinstance(bos, mx.array) else bos)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{tokens[bos]} $A", pair=f"{tokens[bos]} $A {tokens[bos]} $B", special_tokens=[(tokens[bos], bos)])
    return tokenizer


def write_tokenizer(meta: dict, out_dir: Path, config: dict) -> None:
    """Write tokenizer.json, tokenizer_config.json and generation_config.json into out_dir."""
    tokenizer = build_bpe_tokenizer(meta)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    tokens = meta["tokenizer.ggml.tokens"]

    def token(key: str) -> str | None:
        value = meta.get(key)
        return tokens[int(value.item() if isinstance(value, mx.array) else value)] if value is not None else None

    bos, eos = token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")
    pad = token("tokenizer.ggml.padding_token_id") or eos
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": pad,
        "unk_token": token("tokenizer.ggml.unknown_token_id"),
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "clean_up_tokenization_spaces": False,
        "model_max_length": config.get("max_position_embeddings", 4096),
    }
    template = meta.get("tokenizer.chat_template")
    if template:
        tok_config["chat_template"] = template
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
    generation = {"bos_token_id": config.get("bos_token_id"), "eos_token_id": config.get("eos_token_id")}
    (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2))
