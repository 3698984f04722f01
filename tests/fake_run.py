"""Build run folders for compare/eval tests without the trainer: a tiny model plus a random adapter.

The adapter is made with mlx-lm's own LoRA layers (non-zero random `lora_b`, so the tuned
model really differs from the base) and saved in mlx-lm's adapter format, exactly what
the trainer writes into RUN/adapters/best.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import yaml
from mlx.utils import tree_flatten

LORA = {"rank": 4, "scale": 4.0, "dropout": 0.0}

TEST_CHATS = [
    [{"role": "user", "content": "Write a tagline for our running shoes."},
     {"role": "assistant", "content": "light, fast, yours."}],
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris is the capital of France."}],
    [{"role": "system", "content": "Answer briefly."},
     {"role": "user", "content": "what is two plus two?"},
     {"role": "assistant", "content": "four."}],
]


def save_random_adapter(model_dir: Path, out_dir: Path, seed: int = 1, strength: float = 0.5,
                        num_layers: int = 2, fine_tune_type: str = "lora", rank: int = 4,
                        scale: float = 4.0, keys: list[str] | None = None) -> Path:
    """An mlx-lm adapter for the model in `model_dir` with random non-zero weights.

    Made the way mlx-lm makes one (`linear_to_lora_layers`, the trainable parameters saved
    to adapters.safetensors, its config beside it), so it is what the trainer writes.
    """
    import mlx_lm
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = mlx_lm.load(str(model_dir))
    model.freeze()
    lora = {**LORA, "rank": rank, "scale": scale, **({"keys": keys} if keys else {})}
    mx.random.seed(seed)  # lora_a is drawn here too
    linear_to_lora_layers(model, num_layers, lora, use_dora=fine_tune_type == "dora")
    weights = {k: (mx.random.normal(v.shape) * strength if k.endswith("lora_b") else v)
               for k, v in tree_flatten(model.trainable_parameters())}
    out_dir.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out_dir / "adapters.safetensors"), weights)
    config = {"fine_tune_type": fine_tune_type, "num_layers": num_layers, "lora_parameters": lora,
              "model": str(model_dir)}
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out_dir


def make_run(run_dir: Path, model_dir: Path, chats: list[list[dict]] | None = None,
             format_check: dict | None = None, seed: int = 1) -> Path:
    """A run folder: config.yaml naming the model, a random adapter in adapters/best, data/test.jsonl."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": str(model_dir)}
    if format_check:
        config["format_check"] = format_check
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    save_random_adapter(model_dir, run_dir / "adapters" / "best", seed=seed)
    (run_dir / "data").mkdir(exist_ok=True)
    lines = [json.dumps({"messages": chat}) for chat in (chats or TEST_CHATS)]
    (run_dir / "data" / "test.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir
