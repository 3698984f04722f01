"""The one run-folder builder for tests that need a trained run without running the trainer.

`make_run` writes what the trainer leaves, through the product's own code: config.yaml from a
`TrainConfig`, data/ prepared by the data doctor (train.jsonl and report.json), and an mlx-lm
adapter in adapters/best with random non-zero weights, so the tuned model really differs from
the base. The held-out splits (valid.jsonl, test.jsonl) hold exactly the chats given, so a
test knows what compare, eval and the export check run on.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

from localsft import data
from localsft.runs.folder import RunFolder
from localsft.train import TrainConfig
from support.training import make_data

CHATS = [
    [{"role": "user", "content": "Write a tagline for our running shoes."},
     {"role": "assistant", "content": "light, fast, yours."}],
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris is the capital of France."}],
    [{"role": "system", "content": "Answer briefly."},
     {"role": "user", "content": "what is two plus two?"},
     {"role": "assistant", "content": "four."}],
]

# One user turn and one answer each: the export checks score the answer after the prompt.
HELD_OUT = [
    [{"role": "user", "content": "Write a tagline for our new running shoes."},
     {"role": "assistant", "content": "Light, fast, yours."}],
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris is the capital of France."}],
    [{"role": "user", "content": "Question: what is two plus two?"},
     {"role": "assistant", "content": "Answer: four."}],
]

# The export tests' adapter: q, v and down projections, a stronger scale, the HELD_OUT chats.
EXPORT = {"held_out": HELD_OUT, "scale": 8.0, "strength": 0.3,
          "keys": ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"]}


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
    lora = {"rank": rank, "scale": scale, "dropout": 0.0, **({"keys": keys} if keys else {})}
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


def make_run(run_dir: Path, model_dir: Path, held_out: list[list[dict]] | None = None,
             format_check: dict | None = None, seed: int = 1, strength: float = 0.5, num_layers: int = 2,
             rank: int = 4, scale: float = 4.0, keys: list[str] | None = None,
             fine_tune_type: str = "lora", system_prompt: str | None = None) -> Path:
    """A finished-looking run folder on the model in `model_dir`; returns the folder (its training
    rows led by `system_prompt`, as the data doctor adds it)."""
    run = RunFolder(Path(run_dir))
    run.path.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(model=str(model_dir), data=str(run.data_dir), method=fine_tune_type, lora_rank=rank,
                         lora_alpha=scale * rank, lora_layers=num_layers, lora_keys=keys, seed=seed,
                         format_check=format_check, system_prompt=system_prompt)
    config.save(run.config_path)
    with tempfile.TemporaryDirectory() as tmp:
        source = make_data(Path(tmp), n_valid=0) / "train.jsonl"
        data.prepare(source, run.data_dir, tokenizer=str(model_dir), max_seq_len=config.max_seq_len,
                     valid_fraction=0.0, test_fraction=0.0, seed=seed, system_prompt=system_prompt)
    chats = "".join(json.dumps({"messages": chat}) + "\n" for chat in (held_out or CHATS))
    for split in ("valid", "test"):
        (run.data_dir / f"{split}.jsonl").write_text(chats)
    save_random_adapter(model_dir, run.adapters_dir("best"), seed=seed, strength=strength, num_layers=num_layers,
                        fine_tune_type=fine_tune_type, rank=rank, scale=scale, keys=keys)
    return run.path


def make_export_run(run_dir: Path, model_dir: Path, **changes) -> Path:
    """`make_run` with the export tests' adapter and held-out chats (EXPORT), `changes` on top."""
    return make_run(run_dir, model_dir, **{**EXPORT, **changes})
