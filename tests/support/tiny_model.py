"""Build tiny random llama models with a throwaway tokenizer, in-process, in seconds.

Used by unit tests (never by the product). The tokenizer is a byte-level BPE
trained on a few sentences, with ChatML special tokens and chat template, so it
behaves like the default model's tokenizer but is tiny.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France. Berlin is the capital of Germany.",
    "Write a tagline for our new running shoes: light, fast, yours.",
    "Question: what is two plus two? Answer: four.",
    "Kundenservice: Vielen Dank für Ihre Nachricht! Café, naïve, emoji 🎉.",
    "def add(a, b):\n    return a + b\n",
] * 20


def build_tokenizer(out_dir: Path, vocab_size: int = 384) -> int:
    """Train and save a tiny byte-level BPE tokenizer; returns its vocabulary size."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS, trainer)
    tok.save(str(out_dir / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|im_start|>",
              "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
              "add_bos_token": False, "chat_template": CHATML, "model_max_length": 512}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config))
    return tok.get_vocab_size()


def make_tiny_model(out_dir: Path, layers: int = 2, hidden: int = 64, heads: int = 4,
                    kv_heads: int = 2, seed: int = 0, quantize: bool = False) -> Path:
    """Write a random llama model folder loadable with `mlx_lm.load`; returns the folder."""
    from mlx_lm.models import llama
    from mlx_lm.utils import quantize_model, save_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = build_tokenizer(out_dir)
    config = {"model_type": "llama", "hidden_size": hidden, "num_hidden_layers": layers,
              "intermediate_size": hidden * 2, "num_attention_heads": heads,
              "num_key_value_heads": kv_heads, "rms_norm_eps": 1e-5, "vocab_size": vocab,
              "rope_theta": 10000.0, "tie_word_embeddings": True, "max_position_embeddings": 512,
              "bos_token_id": 1, "eos_token_id": 2}
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    if quantize:
        model, config = quantize_model(model, config, group_size=32, bits=4)
    save_model(out_dir, model)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    return out_dir
