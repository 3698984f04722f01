"""What every model folder export holds besides weights: config, tokenizer files, end-of-turn ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from localsft.export.merge import Tuned, copy_model, quantize

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json")
# End-of-turn markers of common chat templates; the ones a model's template uses stop generation.
END_OF_TURN_MARKERS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|eom_id|>", "</s>")


def _ids(value) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple, set)) else [int(value)]


def chat_template(tokenizer) -> str:
    """The model's chat template (Jinja text), or '' when it has none."""
    template = getattr(getattr(tokenizer, "_tokenizer", tokenizer), "chat_template", None)
    return template if isinstance(template, str) else ""


def end_of_turn_ids(tokenizer, config: dict) -> list[int]:
    """Token ids that end the model's turn: the config's eos ids, the tokenizer's, the template's markers."""
    ids = set(_ids(config.get("eos_token_id"))) | set(_ids(getattr(tokenizer, "eos_token_ids", None)))
    ids |= set(_ids(getattr(tokenizer, "eos_token_id", None)))
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    template = chat_template(tokenizer)
    ids |= {vocab[m] for m in END_OF_TURN_MARKERS if m in template and m in vocab}
    return sorted(ids)


def stop_tokens(tokenizer, config: dict) -> list[str]:
    """The end-of-turn ids as token strings (what Ollama's `stop` parameter takes)."""
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    return [by_id[i] for i in end_of_turn_ids(tokenizer, config) if i in by_id]


def write_tokenizer_files(tuned: Tuned, out: Path) -> None:
    """Copy the base's tokenizer files and write generation_config.json with the end-of-turn ids."""
    for name in TOKENIZER_FILES:
        if (tuned.base_path / name).exists():
            shutil.copy2(tuned.base_path / name, out / name)
    generation = {}
    if (tuned.base_path / "generation_config.json").exists():
        generation = json.loads((tuned.base_path / "generation_config.json").read_text())
    eos = end_of_turn_ids(tuned.tokenizer, tuned.base_config)
    if eos:  # transformers stops generation at any of these
        generation["eos_token_id"] = eos if len(eos) > 1 else eos[0]
    if tuned.base_config.get("bos_token_id") is not None:
        generation.setdefault("bos_token_id", tuned.base_config["bos_token_id"])
    generation = {k: v for k, v in generation.items() if v is not None}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))


def save_merged(tuned: Tuned, out: Path, config: dict, bits: int | None = None) -> None:
    """Write the fused model's weights (save dtype, optionally re-quantized), config and tokenizer."""
    from mlx_lm.utils import save_config, save_model

    model = copy_model(tuned.model, tuned.save_dtype)
    if bits:
        model, config = quantize(model, config, bits)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out, model)
    save_config(dict(config), out / "config.json")
    write_tokenizer_files(tuned, out)


def adds_bos(tuned: Tuned) -> bool:
    """Whether llama.cpp should start every text with the BOS token (add_bos_token).

    Only when the tokenizer does so and the chat template starts with it too: a template without
    BOS (Phi-3) means the model was trained on conversations without one.
    """
    hf = getattr(tuned.tokenizer, "_tokenizer", tuned.tokenizer)
    bos = tuned.tokenizer.get_vocab().get(hf.bos_token) if hf.bos_token else None
    if bos is None or list(tuned.tokenizer.encode("a"))[:1] != [bos]:
        return False
    if not chat_template(tuned.tokenizer):
        return True
    try:
        text = tuned.tokenizer.apply_chat_template([{"role": "user", "content": "a"}], tokenize=False)
    except Exception:  # a template that rejects this chat: keep the tokenizer's own rule
        return True
    return text.startswith(hf.bos_token)
