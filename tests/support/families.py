"""Tiny random models of the families people use, built in-process (no downloads), in HF layout.

Each family gets its transformers config (2 layers, hidden size 64), random weights from
transformers itself (torch CPU), a tokenizer of the family's kind trained here (byte-level BPE
for Llama 3 / Qwen, SentencePiece for Gemma / Mistral / Phi), its special tokens and a chat
template written like the family's own (trimmed of date stamps and tool calling).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France. Berlin is the capital of Germany.",
    "Write a tagline for our new running shoes: light, fast, yours.",
    "Question: what is two plus two? Answer: four.",
    "Kundenservice: Vielen Dank für Ihre Nachricht! Café, naïve.",
    "def add(a, b):\n    return a + b\n",
] * 20

_CHATML_BODY = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
                " + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
                "{{ '<|im_start|>assistant\\n' }}{% endif %}")
QWEN25_TEMPLATE = ("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are Qwen, created by "
                   "Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{% endif %}" + _CHATML_BODY)
QWEN3_TEMPLATE = _CHATML_BODY
LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}{{- 'Cutting Knowledge Date: December 2023\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")
GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] "
    "| trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}")
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] "
    "+ '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}"
    "{%- endif -%}{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}")
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token }}{% endif %}{% endfor %}")
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + "
    "'<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")


@dataclass
class Family:
    """One model family: its transformers config, tokenizer kind, special tokens and chat template."""

    name: str
    model_type: str
    config_class: str
    tokenizer: str  # "bpe" or "spm"
    template: str
    bos: str
    eos: str  # the end-of-turn token generation stops at
    specials: list[str]
    extra: dict = field(default_factory=dict)
    pad: str | None = None


FAMILIES = [
    Family("llama3", "llama", "LlamaConfig", "bpe", LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>",
           ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
           {"rope_theta": 500000.0}),
    Family("qwen2.5", "qwen2", "Qwen2Config", "bpe", QWEN25_TEMPLATE, "", "<|im_end|>",
           ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], {"rope_theta": 1000000.0}, pad="<|endoftext|>"),
    Family("qwen3", "qwen3", "Qwen3Config", "bpe", QWEN3_TEMPLATE, "", "<|im_end|>",
           ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], {"rope_theta": 1000000.0}, pad="<|endoftext|>"),
    Family("gemma2", "gemma2", "Gemma2Config", "spm", GEMMA2_TEMPLATE, "<bos>", "<end_of_turn>",
           ["<start_of_turn>", "<end_of_turn>"], {"query_pre_attn_scalar": 16, "sliding_window": 512}),
    Family("gemma3", "gemma3_text", "Gemma3TextConfig", "spm", GEMMA3_TEMPLATE, "<bos>", "<end_of_turn>",
           ["<start_of_turn>", "<end_of_turn>"], {"query_pre_attn_scalar": 16, "sliding_window": 512,
                                                  "layer_types": ["sliding_attention", "full_attention"]}),
    Family("mistral", "mistral", "MistralConfig", "spm", MISTRAL_TEMPLATE, "<s>", "</s>", [],
           {"sliding_window": None}),
    Family("phi3", "phi3", "Phi3Config", "spm", PHI3_TEMPLATE, "<s>", "<|end|>",
           ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"], {"pad_token_id": 0}),
]
BY_NAME = {f.name: f for f in FAMILIES}


def _bpe_tokenizer(family: Family, out: Path, size: int = 384):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=family.specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    if family.bos:  # Llama 3 starts every text with <|begin_of_text|>
        from tokenizers.processors import TemplateProcessing

        tok.post_processor = TemplateProcessing(single=f"{family.bos} $A", pair=f"{family.bos} $A $B",
                                                special_tokens=[(family.bos, tok.token_to_id(family.bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=family.bos or None, eos_token=family.eos,
                                   pad_token=family.pad or family.eos)


def _spm_tokenizer(family: Family, out: Path, size: int = 320):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    bos, eos = ("<bos>", "<eos>") if family.name.startswith("gemma") else ("<s>", "</s>")
    pad = "<pad>"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_prefix=str(out / "tokenizer"), vocab_size=size, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, user_defined_symbols=family.specials, pad_id=0, unk_id=1,
        bos_id=2, eos_id=3, pad_piece=pad, bos_piece=bos, eos_piece=eos, unk_piece="<unk>",
        add_dummy_prefix=not family.name.startswith("gemma"), remove_extra_whitespaces=False,
        minloglevel=2)
    (out / "tokenizer.vocab").unlink()
    cls = "GemmaTokenizer" if family.name.startswith("gemma") else "LlamaTokenizer"
    config = {"tokenizer_class": cls, "bos_token": bos, "eos_token": family.eos if family.eos != eos else eos,
              "pad_token": pad, "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
              "legacy": False}
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    (out / "tokenizer.model").unlink()  # the fast tokenizer.json saved below is what users load
    (out / "tokenizer_config.json").unlink()
    return tokenizer


def build_family_model(family: Family | str, out: Path, seed: int = 0, hidden: int = 64) -> Path:
    """Write a tiny random model of `family` in Hugging Face layout (safetensors) into `out`.

    hidden: 64 by default; 256 for files in the K-quants, whose blocks hold 256 weights of a row.
    """
    import torch
    import transformers

    family = BY_NAME[family] if isinstance(family, str) else family
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = (_bpe_tokenizer if family.tokenizer == "bpe" else _spm_tokenizer)(family, out)
    tokenizer.chat_template = family.template
    vocab = tokenizer.get_vocab()
    size = len(tokenizer)
    config = getattr(transformers, family.config_class)(
        vocab_size=size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4, max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=vocab.get(family.bos), eos_token_id=vocab[family.eos], **family.extra)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # larger than the 0.02 init: tiny random logits otherwise tie
        for name, param in model.named_parameters():
            if param.ndim == 2:
                param.normal_(0, 0.2 if "embed" in name else 0.08)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def make_chat_data(folder: Path, n_train: int = 16, n_valid: int = 4, answer: str | None = None) -> Path:
    """train.jsonl / valid.jsonl of short chats whose answers follow one pattern (something to learn).

    answer: every answer is this text (a tiny model learns it, and to end its turn after it, in a few steps).
    """
    import random

    rng = random.Random(0)
    words = ["fox", "dog", "capital", "Paris", "shoes", "fast", "light", "Berlin"]
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("valid", n_valid)):
        rows = []
        for _ in range(n):
            question = " ".join(rng.choice(words) for _ in range(rng.randint(2, 12)))
            rows.append({"messages": [{"role": "user", "content": question},
                                      {"role": "assistant", "content": answer or f"Answer: {question[:12]}"}]})
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder
