"""The one schema for a training run. Defaults live here and nowhere else.

The same `TrainConfig` is filled from a recipe file, CLI flags (`--set key=value`) and
the UI, saved as the run's config.yaml, and read back on resume.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from localsft.errors import UserError

METHODS = ("lora", "dora", "full")
SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "float32", "float16", "bfloat16", "quantized")
PREFERENCE_LOSSES = ("dpo", "orpo")
LIMIT = 1e9  # no count (steps, epochs, sizes) is sensibly larger; bigger ones overflow deep inside training


@dataclass
class TrainConfig:
    """Everything that decides what a training run does. Field metadata carries the help text."""

    # "preference": set by a preference run (train --from), not offered as a typed setting;
    # "path": names a file or folder (never offered as a typed setting in the studio);
    # "choices": the allowed values.
    model: str | None = field(default=None, metadata={
        "help": "model name or folder (None: the default model)", "path": True})
    data: str | None = field(default=None, metadata={
        "help": "a data file, or a folder with train.jsonl/valid.jsonl", "path": True})
    method: str = field(default="lora", metadata={
        "help": "lora, dora, or full (all weights; small models only)", "choices": METHODS})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank r"})
    lora_alpha: float = field(default=160.0, metadata={
        "help": "LoRA alpha; the update is scaled by alpha / rank (160 / 8 = 20, mlx-lm's default scale)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA input"})
    lora_layers: int | None = field(default=None, metadata={
        "help": "adapt the last N transformer blocks (-1: all; None: sized to the data, see sizing.py)"})
    lora_keys: list[str] | None = field(default=None, metadata={
        "help": "projections to adapt, e.g. [self_attn.q_proj, self_attn.v_proj] (None: every linear layer)"})
    epochs: float | None = field(default=None, metadata={
        "help": "passes over the training data (None: sized to the data, see sizing.py)"})
    iters: int | None = field(default=None, metadata={"help": "optimizer steps; overrides epochs when set"})
    small_steps: int | None = field(default=None, metadata={
        "help": "first optimizer steps made with a 2-example batch, before the sized one (None: 10 for 100+ "
                "examples when the batch is sized, else 0; see sizing.py)"})
    batch_tokens: int | None = field(default=None, metadata={
        "help": "token budget per micro-batch (packed rows x width); fewer tokens, more updates per epoch "
                "(None: sized to the data)"})
    batch_size: int | None = field(default=None, metadata={
        "help": "examples per micro-batch; set it to batch without packing (like mlx_lm)"})
    packing: bool = field(default=True, metadata={"help": "pack short examples into shared rows"})
    pack_width: int | None = field(default=None, metadata={
        "help": "row width that short examples are packed into (None: sized to the data, 64-256)"})
    grad_accumulation: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float | None = field(default=None, metadata={
        "help": "peak learning rate (None: sized to the data)"})
    lr_schedule: str = field(default="cosine", metadata={
        "help": "cosine, linear or constant after warmup", "choices": SCHEDULES})
    warmup_ratio: float | None = field(default=None, metadata={
        "help": "fraction of the steps spent warming up (None: none for LoRA/DoRA, 5% for full; see sizing.py)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_seq_len: int = field(default=1024, metadata={"help": "longer examples are truncated to this many tokens"})
    mask_prompt: bool = field(default=True, metadata={"help": "learn the answers only, not the prompts"})
    precision: str = field(default="auto", metadata={
        "help": "auto (follows the device), float32, ... or quantized", "choices": PRECISIONS})
    seed: int = field(default=0, metadata={"help": "seed for data order, LoRA init and dropout"})
    eval_every: int | None = field(default=None, metadata={
        "help": "steps between validations (None: ~6 per run; ~12 with a format check, and every 5 up to step 20)"})
    early_stopping_patience: int = field(default=3, metadata={
        "help": "stop after this many validations without improvement (0: never)"})
    checkpoint_every: int | None = field(default=None, metadata={"help": "steps between checkpoints (None: every eval)"})
    grad_checkpoint: bool = field(default=False, metadata={"help": "recompute activations to save memory"})
    compile: bool = field(default=True, metadata={"help": "compile the training step (fixed shape buckets)"})
    system_prompt: str | None = field(default=None, metadata={
        "help": "system message added to every example of a raw data file (e.g. the task instruction)"})
    valid_fraction: float = field(default=0.1, metadata={"help": "share of a raw data file held out for validation"})
    test_fraction: float = field(default=0.1, metadata={"help": "share of a raw data file held out for testing"})
    sample_prompts: int = field(default=2, metadata={"help": "held-out prompts answered at each validation"})
    sample_max_tokens: int = field(default=48, metadata={"help": "length of those sample answers"})
    replay: float = field(default=0.25, metadata={
        "help": "general requests answered by the base model, as a share of your examples, trained on too "
                "so the tuned model keeps what it knew (0: off; see replay.py)"})
    augment_paraphrases: bool = field(default=False, metadata={
        "help": "under 50 examples: also train on the base model's paraphrases of the inputs (outputs stay yours)"})
    format_check: dict | None = field(default=None, metadata={
        "help": "regex or JSON schema the answers must match (used by evaluation)"})
    parent_run: str | None = field(default=None, metadata={
        "help": "run folder whose adapter this run continues from (train --from)", "path": True})
    preference_loss: str | None = field(default=None, metadata={
        "help": "dpo or orpo: learn from preference pairs (train --from RUN --preferences); None: supervised",
        "preference": True})
    preference_beta: float = field(default=0.1, metadata={
        "help": "DPO/ORPO beta: how far the tuned answers may move from the parent's (DPO) or the odds weight (ORPO)",
        "preference": True})
    label_smoothing: float = field(default=0.1, metadata={
        "help": "share of preference votes assumed flipped (conservative DPO); keeps noisy votes from overfitting",
        "preference": True})
    preference_sft_weight: float = field(default=1.0, metadata={
        "help": "weight of the chosen answers' own loss next to the DPO loss (keeps better answers likely)",
        "preference": True})

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UserError(f"Invalid training setting: {message}")

        for f in fields(self):  # inf and nan pass every comparison below, or fail it with a confusing message
            value = getattr(self, f.name)
            if not _has_type(f.type, value):
                need(False, f"{f.name} must be {_type_words(f.type)}, not {value!r}.")
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"Invalid training setting: {f.name} must be a finite number, not {value}.")
            counts = isinstance(value, int) and not isinstance(value, bool) or f.name == "epochs"
            if counts and isinstance(value, (int, float)) and abs(value) > LIMIT:
                raise UserError(f"Invalid training setting: {f.name} = {value:g} is far too large.")
        need(self.method in METHODS, f"method must be one of {', '.join(METHODS)}, not {self.method!r}.")
        need(self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {', '.join(SCHEDULES)}.")
        need(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}.")
        need(self.lora_rank >= 1, "lora_rank must be at least 1.")
        need(0 <= self.lora_dropout < 1, "lora_dropout must be in [0, 1).")
        need(self.epochs is None or self.epochs > 0 or (self.iters or 0) > 0, "epochs (or iters) must be positive.")
        need(self.iters is None or self.iters >= 1, "iters must be at least 1.")
        need(self.small_steps is None or self.small_steps >= 0, "small_steps must be 0 or more.")
        need(self.learning_rate is None or self.learning_rate > 0, "learning_rate must be positive.")
        need(self.warmup_ratio is None or 0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1).")
        need(0 <= self.replay <= 1, "replay must be between 0 and 1.")
        need(self.max_seq_len >= 8, "max_seq_len must be at least 8.")
        # a row wider than batch_tokens still makes a batch of one row: no need to tie it to max_seq_len
        need(self.batch_tokens is None or self.batch_tokens >= 8, "batch_tokens must be at least 8.")
        need(self.batch_size is None or self.batch_size >= 1, "batch_size must be at least 1.")
        need(self.grad_accumulation >= 1, "grad_accumulation must be at least 1.")
        need(self.pack_width is None or self.pack_width >= 8, "pack_width must be at least 8.")
        need(self.early_stopping_patience >= 0, "early_stopping_patience must be 0 or more.")
        need(0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1, "data fractions must be in [0, 1).")
        need(self.preference_loss in (None, *PREFERENCE_LOSSES),
             f"preference_loss must be one of {', '.join(PREFERENCE_LOSSES)} (or null), not {self.preference_loss!r}.")
        need(self.preference_beta > 0, "preference_beta must be positive.")
        need(0 <= self.label_smoothing < 0.5, "label_smoothing must be in [0, 0.5).")
        need(self.preference_sft_weight >= 0, "preference_sft_weight must be 0 or more.")
        need(self.format_check is None or isinstance(self.format_check, dict),
             "format_check must be a mapping such as {regex: ...} or {json_schema: ...}.")

    @property
    def lora_scale(self) -> float:
        """mlx-lm's raw LoRA multiplier (PEFT's alpha / r)."""
        return self.lora_alpha / self.lora_rank

    @property
    def packs(self) -> bool:
        """Whether batches are packed rows (token budget) rather than a fixed number of examples."""
        return self.packing and self.batch_size is None

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """A config from a plain mapping; unknown keys are a UserError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"Unknown training setting(s): {', '.join(unknown)}. "
                            f"Known: {', '.join(sorted(known))}.")
        values = {k: _coerce_number(k, f.type, values[k]) for f in fields(cls) if (k := f.name) in values}
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise UserError(f"Invalid training settings: {err}") from None

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def with_overrides(self, assignments: list[str]) -> "TrainConfig":
        """Apply `key=value` strings (values read as YAML: 3, 1e-4, true, [a, b], null)."""
        changes = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise UserError(f"--set expects key=value, got {item!r}.")
            changes[key.strip().replace("-", "_")] = yaml.safe_load(raw) if raw.strip() else None
        return self.replace(**changes)

    def save(self, path: Path) -> None:
        from localsft.runs.folder import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as err:
            raise UserError(f"{path} is not valid YAML: {err}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"Cannot read the config file {path}: {getattr(err, 'strerror', None) or err}.") from None
        if not isinstance(values, dict):
            raise UserError(f"{path} must hold settings as `key: value` lines, not a {type(values).__name__}.")
        return cls.from_dict(values)


def default(name: str):
    """The schema's default for one setting: other tools (e.g. the data check) take theirs from here."""
    spec = TrainConfig.__dataclass_fields__[name]
    return spec.default_factory() if callable(spec.default_factory) else spec.default


def _coerce_number(name: str, annotation: str, value):
    """YAML reads `1e-4` as a string; numbers given as text become numbers."""
    if isinstance(value, str) and ("float" in annotation or "int" in annotation):
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"Invalid training setting: {name}: expected a number, got {value!r}.") from None
        if "float" in annotation:
            return number
        if not number.is_integer():
            raise UserError(f"Invalid training setting: {name} must be a whole number, not {value!r}.")
        return int(number)
    return value


_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


def setting_kind(annotation: str) -> str | None:
    """bool, int, float or str for a plain setting; None for lists and mappings (checked on their own)."""
    if "list" in annotation or "dict" in annotation:
        return None
    return next((kind for kind in ("bool", "int", "float") if kind in annotation), "str")


def _has_type(annotation: str, value) -> bool:
    kind = setting_kind(annotation)
    if kind is None or (value is None and "None" in annotation):
        return True
    return isinstance(value, _TYPES[kind]) and (kind == "bool" or not isinstance(value, bool))


def _type_words(annotation: str) -> str:
    words = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "text"}
    return words[setting_kind(annotation)] + (" (or empty)" if "None" in annotation else "")


def help_lines() -> list[str]:
    """`name (default): help` for every setting, for `--set` help and the docs."""
    return [f"{f.name} ({f.default!r}): {f.metadata.get('help', '')}" for f in fields(TrainConfig)]
