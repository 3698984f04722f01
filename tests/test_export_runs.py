"""Build run folders with a trained-looking adapter for the export tests (no trainer needed).

The adapter is made the way mlx-lm makes one (`linear_to_lora_layers`, trainable
parameters saved to adapters.safetensors, its config beside it) with random non-zero
`lora_b`, so it visibly changes the model's outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fake_run import save_random_adapter

HELD_OUT = [
    [{"role": "user", "content": "Write a tagline for our new running shoes."},
     {"role": "assistant", "content": "Light, fast, yours."}],
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris is the capital of France."}],
    [{"role": "user", "content": "Question: what is two plus two?"},
     {"role": "assistant", "content": "Answer: four."}],
]


def make_adapter(model_dir: Path, out_dir: Path, num_layers: int = 2, rank: int = 4,
                 scale: float = 8.0, keys: list[str] | None = None, seed: int = 1,
                 strength: float = 0.3, fine_tune_type: str = "lora") -> Path:
    """An mlx-lm adapter folder on q, v and down projections, with random (non-zero) weights."""
    return save_random_adapter(model_dir, out_dir, seed=seed, strength=strength, num_layers=num_layers,
                               fine_tune_type=fine_tune_type, rank=rank, scale=scale,
                               keys=keys or ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"])


def make_run(run_dir: Path, model_dir: Path, **adapter_kwargs) -> Path:
    """A run folder: config.yaml, adapters/best, data splits and report, as the trainer leaves them."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": str(model_dir), "learning_rate": 1e-4, "iters": 200, "batch_size": 4,
              "lora": {"rank": adapter_kwargs.get("rank", 4), "scale": adapter_kwargs.get("scale", 8.0)}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    make_adapter(model_dir, run_dir / "adapters" / "best", **adapter_kwargs)
    data = run_dir / "data"
    data.mkdir(exist_ok=True)
    for split in ("train", "valid", "test"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps({"messages": m}) + "\n" for m in HELD_OUT))
    (data / "report.json").write_text(json.dumps({"examples": 300, "train": 240, "valid": 30, "test": 30,
                                                  "tokens": {"mean": 61.5, "max": 180},
                                                  "sample": "SECRET EXAMPLE TEXT"}))
    return run_dir


@pytest.fixture
def tiny_run(tiny_model_dir, tmp_path) -> Path:
    """A run folder on the tiny random model with a 2-layer LoRA adapter."""
    return make_run(tmp_path / "run", tiny_model_dir, strength=0.3)
