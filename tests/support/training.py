"""Training data and settings for trainer tests on the tiny model, and adapter comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np

from localsft.runs.folder import RunFolder
from localsft.train import TrainConfig

WORDS = ["fox", "dog", "capital", "Paris", "shoes", "fast", "light", "Berlin"]


def _chat(rng, answer_word: str) -> dict:
    question = " ".join(rng.choice(WORDS) for _ in range(rng.integers(2, 25)))
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": f"{answer_word}: {question[:12]}"}]}


def make_data(folder: Path, n_train: int = 48, n_valid: int = 8, valid_word: str = "Answer") -> Path:
    """A data folder (train.jsonl, valid.jsonl) of short random chats whose answers follow a pattern."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, word in (("train", n_train, "Answer"), ("valid", n_valid, valid_word)):
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(_chat(rng, word)) for _ in range(n)) + "\n")
    return folder


def tiny_config(model_dir, data_dir, **changes) -> TrainConfig:
    """Settings that train the tiny model in seconds."""
    base = dict(model=str(model_dir), data=str(data_dir), epochs=2, batch_tokens=256, pack_width=128,
                max_seq_len=128, learning_rate=2e-3, sample_prompts=0, eval_every=4,
                early_stopping_patience=0, replay=0.0, lora_alpha=16.0, warmup_ratio=0.05)
    return TrainConfig(**{**base, **changes})


def adapter_weights(run_dir: Path, which: str = "last") -> dict:
    """The adapter weights a run saved (adapters/last or adapters/best)."""
    return mx.load(str(RunFolder(run_dir).adapters_dir(which) / "adapters.safetensors"))


def max_diff(a: dict, b: dict) -> float:
    """Largest absolute difference between two sets of weights with the same names."""
    assert a.keys() == b.keys()
    return max(float(mx.max(mx.abs(a[k] - b[k])).item()) for k in a)
