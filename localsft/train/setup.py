"""Everything a run needs before its first step: data splits, the adapted model, the optimizer."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from localsft.data.readers import file_in_folder
from localsft.errors import UserError
from localsft.runs.folder import RunFolder
from localsft.train.batching import read_jsonl
from localsft.train.config import TrainConfig

SPLITS = ("train", "valid", "test")


def prepare_run_data(config: TrainConfig, run: RunFolder, tokenizer) -> None:
    """Fill RUN/data: a folder with train.jsonl is copied as is; a raw file goes through the data doctor."""
    if config.data is None:
        raise UserError("No training data given (use --data FILE_OR_DIR or a recipe with data).")
    source = Path(config.data).expanduser()
    run.data_dir.mkdir(parents=True, exist_ok=True)
    if source.is_dir() and (source / "train.jsonl").exists():
        if source.resolve() != run.data_dir.resolve():
            for name in [f"{s}.jsonl" for s in SPLITS] + ["report.json"]:
                if found := file_in_folder(source, name):  # refuses a link out of the folder
                    shutil.copyfile(found, run.data_dir / name)
    elif source.is_file():
        from localsft import data

        data.prepare(source, run.data_dir, tokenizer=tokenizer, max_seq_len=config.max_seq_len,
                     valid_fraction=config.valid_fraction, test_fraction=config.test_fraction, seed=config.seed,
                     system_prompt=config.system_prompt, mask_prompt=config.mask_prompt)
    elif source.is_dir():
        raise UserError(f"{source} has no train.jsonl. Give a data file, or a folder with train.jsonl "
                        f"(and valid.jsonl).")
    else:
        raise UserError(f"Training data not found: {source}.")


def load_splits(config: TrainConfig, run: RunFolder) -> tuple[list[dict], list[dict]]:
    """(train rows, valid rows); without valid.jsonl a seeded share of train is held out."""
    train = read_jsonl(run.data_dir / "train.jsonl")
    valid_path = run.data_dir / "valid.jsonl"
    if valid_path.exists():
        return train, read_jsonl(valid_path)
    held = int(len(train) * config.valid_fraction)
    if held == 0:
        return train, []
    order = np.random.default_rng(config.seed).permutation(len(train))
    return [train[i] for i in order[held:]], [train[i] for i in order[:held]]


def lora_keys(model: nn.Module, keys: list[str] | None) -> list[str]:
    """The projections to adapt: the given ones, or every linear layer of a transformer block."""
    found = sorted({name for name, m in model.layers[0].named_modules()
                    if isinstance(m, (nn.Linear, nn.QuantizedLinear))})
    if keys is None:
        return found
    missing = sorted(set(keys) - set(found))
    if missing:
        raise UserError(f"This model has no projection(s) {', '.join(missing)}; it has {', '.join(found)}.")
    return list(keys)


def apply_method(model: nn.Module, config: TrainConfig) -> tuple[int, list[str]]:
    """Freeze the base and add LoRA/DoRA layers (or unfreeze all for full); returns (layers, keys)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    total = len(model.layers)
    layers = total if config.lora_layers < 0 else min(config.lora_layers, total)
    keys = lora_keys(model, config.lora_keys)
    mx.random.seed(config.seed)  # LoRA init draws random numbers
    if config.method == "full":
        model.unfreeze()
        return total, keys
    model.freeze()
    linear_to_lora_layers(model, layers, {"rank": config.lora_rank, "scale": config.lora_scale,
                                          "dropout": config.lora_dropout, "keys": keys},
                          use_dora=config.method == "dora")
    mx.eval(model.parameters())
    return layers, keys


def build_optimizer(config: TrainConfig, total_steps: int) -> optim.Optimizer:
    """AdamW with linear warmup then cosine, linear or constant decay over `total_steps`."""
    lr = config.learning_rate
    warmup = int((config.warmup_ratio or 0.0) * total_steps)
    rest = max(1, total_steps - warmup)
    main = {"cosine": lambda: optim.cosine_decay(lr, rest, 0.0),
            "linear": lambda: optim.linear_schedule(lr, 0.0, rest),
            "constant": lambda: lr}[config.lr_schedule]()
    schedule = main
    if warmup > 0:
        schedule = optim.join_schedules([optim.linear_schedule(lr / warmup, lr, warmup), _as_schedule(main)],
                                        [warmup])
    return optim.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)


def _as_schedule(value):
    return value if callable(value) else (lambda step: mx.array(value, mx.float32))


def trainable_count(model: nn.Module) -> int:
    from mlx.utils import tree_flatten

    return sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
