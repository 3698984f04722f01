"""One copy of the base weights, any number of adapters, the adapter chosen per batch row.

`AdapterBank(loaded)` wraps a loaded model; `bank.add(path)` attaches one mlx-lm adapter
folder in a slot of its own (slot 0 is the base model) without touching the base weights,
so adapters can be added at any time and a switch never reloads anything. Before a
forward pass, `bank.switch.set_adapters([slot per row])` says which adapter each batch
row uses: row 0 can be the base model, row 1 one run and row 2 another, decoded as one
batch. The on/off API of the side-by-side compare is the one-adapter case:
`load_switchable(run)` attaches the run's adapter in slot 1 and `switch.set_rows([False,
True])` picks base/tuned per row.

LoRA layers keep their low-rank matrices per slot, stacked on first use in a mixed batch
and gathered per row (`mx.gather_mm`); a batch that uses one slot computes exactly what
mlx-lm's `LoRALinear` computes, and a base row adds an exact zero. Other adapter layers
(DoRA, mixture-of-experts LoRA) compute their output and pick it for their rows.
Adapters on the embedding layer are refused.

Not thread-safe: the switch belongs to the model, so one bank runs one forward pass at
a time (the server and the UI run all generation on one thread).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from localsft.errors import UserError
from localsft.models.loading import LoadedModel, load_model
from localsft.runs.folder import RunFolder


class RowSwitch:
    """Which adapter slot each row of the next forward passes uses (0 = the base model)."""

    def __init__(self) -> None:
        self.slots = 1  # how many slots exist, base included
        self.set_adapters([1])

    def set_adapters(self, row_slots: list[int]) -> None:
        """Row i uses adapter slot `row_slots[i]` (a single value applies to every row)."""
        first = row_slots[0]
        self.uniform = first if all(s == first for s in row_slots) else None
        self.index = None if self.uniform is not None else mx.array(row_slots, dtype=mx.uint32)

    def set_rows(self, adapter_on: list[bool]) -> None:
        """The one-adapter case: adapter (slot 1) on for the rows marked True."""
        self.set_adapters([1 if on else 0 for on in adapter_on])

    @property
    def all_off(self) -> bool:
        return self.uniform == 0

    def rows_of(self, slot: int, y: mx.array) -> mx.array:
        """A mask of the rows using `slot`, shaped to broadcast over `y` (rows first)."""
        return (self.index == slot).reshape((-1,) + (1,) * (y.ndim - 1))


class MultiAdapterLinear(nn.Module):
    """A base linear layer plus the adapters of every slot that adapts it."""

    def __init__(self, base: nn.Module, switch: RowSwitch) -> None:
        super().__init__()
        self.base = base
        self._switch = switch  # underscore: not a parameter, not saved
        self._loras: dict = {}  # slot -> (lora_a (in, r), lora_b (r, out), scale)
        self._others: dict = {}  # slot -> another adapted layer on the same base (DoRA, ...)
        self._stack = None  # (slots, A, B, scales) for mixed batches, rebuilt when slots change

    def add_lora(self, slot: int, lora_a: mx.array, lora_b: mx.array, scale: float) -> None:
        self._loras[slot] = (lora_a, lora_b, scale)
        self._stack = None

    def add_other(self, slot: int, layer: nn.Module) -> None:
        self._others[slot] = layer

    def _stacked(self):
        """Every slot's LoRA matrices in one array (zeros for slots that skip this layer),
        ranks padded to the largest with zeros, which leaves each product exact."""
        n = self._switch.slots
        if self._stack is None or self._stack[0] != n:
            rank = max(a.shape[1] for a, _, _ in self._loras.values())
            a0, b0, _ = next(iter(self._loras.values()))
            A = mx.zeros((n, a0.shape[0], rank), dtype=a0.dtype)
            B = mx.zeros((n, rank, b0.shape[1]), dtype=b0.dtype)
            scales = [0.0] * n
            for slot, (a, b, scale) in self._loras.items():
                A[slot, :, :a.shape[1]] = a
                B[slot, :b.shape[0], :] = b
                scales[slot] = scale
            self._stack = (n, A, B, mx.array(scales, dtype=b0.dtype))
            mx.eval(A, B)
        return self._stack[1:]

    def __call__(self, x: mx.array, *args, **kwargs) -> mx.array:
        switch = self._switch
        if switch.uniform is not None:  # one slot for the whole batch: as mlx-lm computes it
            if switch.uniform in self._others:
                return self._others[switch.uniform](x, *args, **kwargs)
            y = self.base(x, *args, **kwargs)
            if switch.uniform not in self._loras:
                return y
            a, b, scale = self._loras[switch.uniform]
            return y + (scale * ((x @ a) @ b)).astype(x.dtype)
        y = self.base(x, *args, **kwargs)
        if self._loras:
            A, B, scales = self._stacked()
            rows = switch.index  # row i of x (rows, length, in) times its slot's matrices
            z = mx.gather_mm(mx.gather_mm(x, A, rhs_indices=rows), B, rhs_indices=rows)
            y = y + (scales[switch.index].reshape((-1,) + (1,) * (z.ndim - 1)) * z).astype(x.dtype)
        for slot, layer in self._others.items():
            y = mx.where(switch.rows_of(slot, y), layer(x, *args, **kwargs), y)
        return y


# Loading: an adapter folder's config and weights, checked against the model. Kept apart
# from the layers above so that another loader can feed `AdapterBank.add_weights`.

_TARGETS = (nn.Linear, nn.QuantizedLinear)


def read_adapter(adapter_path: Path) -> tuple[dict, dict[str, mx.array]]:
    """The adapter's config and weights, or a UserError saying why it is not a usable adapter."""
    adapter_path = Path(adapter_path)
    try:
        config = json.loads((adapter_path / "adapter_config.json").read_text())
        weights = mx.load(str(adapter_path / "adapters.safetensors"))
    except (OSError, ValueError) as err:
        raise UserError(f"{adapter_path} is not a readable mlx-lm adapter folder: {err}") from None
    if config.get("fine_tune_type", "lora") == "full":
        raise UserError(f"{adapter_path} holds fully fine-tuned weights, not an adapter; "
                        "serving several runs on one model needs LoRA or DoRA adapters.")
    return config, weights


def declared_layers(model: nn.Module, config: dict) -> set[str]:
    """Full names of the layers the adapter config adapts (mlx-lm's rule: `keys` or every
    linear layer, in the last `num_layers` blocks, plus top-level `keys`)."""
    params = config.get("lora_parameters", {})
    keys = params.get("keys")
    names = {id(m): n for n, m in model.named_modules()}

    def wanted(key: str, module: nn.Module) -> bool:
        if keys is not None:
            return key in keys
        return isinstance(module, _TARGETS + (MultiAdapterLinear, nn.Embedding, nn.QuantizedEmbedding))

    declared = set()
    for block in model.layers[-max(config.get("num_layers", 0), 0):]:
        prefix = names[id(block)]
        declared |= {f"{prefix}.{k}" for k, m in block.named_modules() if k and wanted(k, m)}
    if keys is not None:
        declared |= {k for k, _ in model.named_modules() if k in keys}
    return declared


def _adapted_layers(model: nn.Module, config: dict, weights: dict[str, mx.array],
                    where: str) -> dict[str, dict[str, mx.array]]:
    """The adapter's weights grouped by layer name, each layer checked to exist and be linear."""
    declared, modules = declared_layers(model, config), dict(model.named_modules())
    layers: dict[str, dict[str, mx.array]] = {}
    problems = []
    for key, value in weights.items():
        layer, leaf = key.rsplit(".", 1) if "." in key else ("", key)
        if layer not in declared or leaf not in ("lora_a", "lora_b", "m"):
            problems.append(f"  {key}: not an adapter parameter in the model")
            continue
        if isinstance(modules.get(layer), (nn.Embedding, nn.QuantizedEmbedding)):
            raise UserError(f"Adapters on the embedding layer ({layer}) are not supported for "
                            "serving or comparing yet; train without adapting the embeddings.")
        layers.setdefault(layer, {})[leaf] = value
    if problems:
        detail = "\n".join(problems[:4] + ([f"  ... and {len(problems) - 4} more"] if len(problems) > 4 else []))
        raise UserError(f"The adapter in {where}: {detail}")
    return layers


@dataclass
class AdapterBank:
    """A loaded model with any number of adapters attached, one slot each (slot 0 = base)."""

    loaded: LoadedModel
    switch: RowSwitch = field(default_factory=RowSwitch)
    slots: dict[str, int] = field(default_factory=dict)  # adapter folder (resolved) @ file time -> slot

    def add(self, adapter_path: str | Path) -> int:
        """Attach the mlx-lm adapter in `adapter_path` (once; again returns its slot, unless
        its weights file changed since, e.g. a resumed run finished again)."""
        path = Path(adapter_path).resolve()
        weights = path / "adapters.safetensors"
        key = f"{path}@{weights.stat().st_mtime_ns if weights.exists() else 0}"
        if key not in self.slots:
            config, weights = read_adapter(Path(adapter_path))
            self.add_weights(key, config, weights)
        return self.slots[key]

    def add_weights(self, key: str, config: dict, weights: dict[str, mx.array]) -> int:
        """Attach an adapter given as its config and weights; returns its new slot."""
        folder = key.rsplit("@", 1)[0]
        where = f"{folder} does not fit model {self.loaded.path.name}"
        layers = _adapted_layers(self.loaded.model, config, weights, where)
        if not layers:
            raise UserError(f"The adapter in {folder} adapts no layer of model {self.loaded.path.name}.")
        from mlx_lm.tuner.lora import LoRALinear

        slot = self.switch.slots
        built = [(name, self._adapted(name, config, tensors, where)) for name, tensors in layers.items()]
        fresh = []  # every layer is checked before any is changed: a refused adapter leaves no trace
        for name, (module, adapted) in built:
            layer = module if isinstance(module, MultiAdapterLinear) else MultiAdapterLinear(module, self.switch)
            if layer is not module:
                fresh.append((name, layer))
            if isinstance(adapted, LoRALinear):
                layer.add_lora(slot, adapted.lora_a, adapted.lora_b, float(adapted.scale))
            else:
                layer.add_other(slot, adapted)
        if fresh:
            self.loaded.model.update_modules(tree_unflatten(fresh))
        self.switch.slots += 1
        self.slots[key] = slot
        self.loaded.model.eval()
        return slot

    def _adapted(self, name: str, config: dict, tensors: dict, where: str) -> tuple[nn.Module, nn.Module]:
        """The layer `name` and mlx-lm's adapter layer on its base holding `tensors` (checked)."""
        from mlx_lm.tuner.dora import DoRALinear
        from mlx_lm.tuner.lora import LoRALinear, LoRASwitchLinear

        module = dict(self.loaded.model.named_modules())[name]
        base = module.base if isinstance(module, MultiAdapterLinear) else module
        params = config.get("lora_parameters", {})
        if isinstance(base, _TARGETS):
            kind = DoRALinear if config.get("fine_tune_type") == "dora" else LoRALinear
        else:
            kind = LoRASwitchLinear  # mixture-of-experts layers
        adapted = kind.from_base(base, r=params.get("rank", 8), scale=params.get("scale", 20.0), dropout=0.0)
        expected = dict(adapted.trainable_parameters())
        for leaf, value in tensors.items():
            if leaf not in expected or expected[leaf].shape != value.shape:
                shape = tuple(expected[leaf].shape) if leaf in expected else "none"
                raise UserError(f"The adapter in {where}: {name}.{leaf} has shape {tuple(value.shape)}, "
                                f"the model expects {shape}.")
        adapted.update(tree_unflatten(list(tensors.items())))
        adapted.eval()
        mx.eval(adapted.trainable_parameters())
        return module, adapted


@dataclass
class SwitchableModel:
    """The base model with one run's adapter attached behind a per-row switch (slot 1)."""

    loaded: LoadedModel
    switch: RowSwitch
    adapter_path: Path
    bank: AdapterBank | None = None

    @property
    def model(self) -> nn.Module:
        return self.loaded.model

    @property
    def tokenizer(self):
        return self.loaded.tokenizer


def attach_adapter(loaded: LoadedModel, adapter_path: Path) -> SwitchableModel:
    """Attach the mlx-lm adapter in `adapter_path` to `loaded` (in place) behind a row switch."""
    bank = AdapterBank(loaded)
    bank.add(adapter_path)
    mx.eval(loaded.model.parameters())
    return SwitchableModel(loaded, bank.switch, Path(adapter_path), bank)


def load_switchable(run: RunFolder | str | Path, precision: str = "auto") -> SwitchableModel:
    """Load a run's base model once and attach its best adapter behind a row switch."""
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    adapter = run.best_adapter()
    return attach_adapter(load_model(run.model_name(), precision=precision), adapter)
