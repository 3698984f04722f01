"""One copy of the base weights, the adapter switched on or off per batch row.

`load_switchable(run)` loads the run's base model once, attaches the run's mlx-lm
adapter (localsft.models.adapters), then wraps every adapted layer so that a row mask
decides, per batch row, whether the adapter contributes. Row 0 can be the base model
and row 1 the tuned model in the same forward pass: the tuned model costs no second
copy of the weights, and decoding both is one batched step.

For LoRA layers the mask multiplies the low-rank term (`W x + mask * s * x A B`), so a
masked row is bit-for-bit the base layer. Other adapter layers (DoRA) compute both
outputs and pick one per row. Adapters on the embedding layer are refused.

Not thread-safe: the switch belongs to the model, so one SwitchableModel runs one
generation at a time (a UI serving several sessions queues them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from localsft.errors import UserError
from localsft.models.adapters import attach_adapter
from localsft.models.loading import LoadedModel, load_model
from localsft.runs.folder import RunFolder


class RowSwitch:
    """Which rows of the next forward passes get the adapter, shared by every switched layer."""

    def __init__(self) -> None:
        self.set_rows([True])

    def set_rows(self, adapter_on: list[bool]) -> None:
        """Adapter on for the rows marked True (a single value applies to every row)."""
        self.all_on, self.all_off = all(adapter_on), not any(adapter_on)
        mixed = not (self.all_on or self.all_off)
        self.mask = mx.array(adapter_on) if mixed else None  # (rows,) bool

    def per_row(self, y: mx.array) -> mx.array:
        """The row mask shaped to broadcast over `y` (rows first)."""
        return self.mask.reshape((-1,) + (1,) * (y.ndim - 1))


class SwitchedLoRA(nn.Module):
    """A LoRA linear layer whose low-rank term is multiplied by the switch's row mask."""

    def __init__(self, lora: nn.Module, switch: RowSwitch) -> None:
        super().__init__()
        self.lora = lora
        self._switch = switch  # underscore: not a parameter, not saved

    def __call__(self, x: mx.array) -> mx.array:
        y = self.lora.linear(x)
        if self._switch.all_off:
            return y
        z = (self.lora.scale * ((x @ self.lora.lora_a) @ self.lora.lora_b)).astype(x.dtype)
        if self._switch.mask is not None:
            z = z * self._switch.per_row(z).astype(z.dtype)
        return y + z


class SwitchedAny(nn.Module):
    """Any other adapted linear layer (DoRA, mixture-of-experts LoRA): compute the base and
    the adapted output, pick one per row. Costs a second pass through the adapted layers."""

    def __init__(self, adapted: nn.Module, switch: RowSwitch) -> None:
        super().__init__()
        self.adapted = adapted
        self._switch = switch

    def __call__(self, x: mx.array, *args, **kwargs) -> mx.array:
        base = self.adapted.linear(x, *args, **kwargs)
        if self._switch.all_off:
            return base
        tuned = self.adapted(x, *args, **kwargs)
        if self._switch.mask is None:
            return tuned
        return mx.where(self._switch.per_row(tuned), tuned, base)


def _wrap_adapter_layers(model: nn.Module, switch: RowSwitch) -> int:
    """Replace every adapter layer of `model` by its switched wrapper; returns how many."""
    from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear
    from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear, LoRASwitchLinear

    wrapped = []
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            wrapped.append((name, SwitchedLoRA(module, switch)))
        elif isinstance(module, (DoRALinear, LoRASwitchLinear)):
            wrapped.append((name, SwitchedAny(module, switch)))
        elif isinstance(module, (LoRAEmbedding, DoRAEmbedding)):
            raise UserError("Side-by-side comparison does not support adapters on the embedding "
                            f"layer ({name}) yet; train without adapting the embeddings.")
    if wrapped:
        model.update_modules(tree_unflatten(wrapped))
    return len(wrapped)


@dataclass
class SwitchableModel:
    """The base model with the run's adapter attached behind a per-row switch."""

    loaded: LoadedModel
    switch: RowSwitch
    adapter_path: Path

    @property
    def model(self) -> nn.Module:
        return self.loaded.model

    @property
    def tokenizer(self):
        return self.loaded.tokenizer


def attach_switchable(loaded: LoadedModel, adapter_path: Path) -> SwitchableModel:
    """Attach the mlx-lm adapter in `adapter_path` to `loaded` (in place) behind a row switch."""
    config_path = Path(adapter_path) / "adapter_config.json"
    if config_path.exists() and json.loads(config_path.read_text()).get("fine_tune_type", "lora") == "full":
        raise UserError(f"{adapter_path} holds fully fine-tuned weights, not an adapter; "
                        "compare needs a LoRA or DoRA adapter.")
    attach_adapter(loaded.model, adapter_path, target=f"model {loaded.path.name}")
    switch = RowSwitch()
    if _wrap_adapter_layers(loaded.model, switch) == 0:
        raise UserError(f"The adapter in {adapter_path} adapts no layer of model {loaded.path.name}.")
    loaded.model.eval()
    mx.eval(loaded.model.parameters())
    return SwitchableModel(loaded, switch, Path(adapter_path))


def load_switchable(run: RunFolder | str | Path, precision: str = "auto") -> SwitchableModel:
    """Load a run's base model once and attach its best adapter behind a row switch."""
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    adapter = run.best_adapter()
    return attach_switchable(load_model(run.model_name(), precision=precision), adapter)
