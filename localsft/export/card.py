"""The model card (README.md) every export folder gets.

It says what the model is (base, method, hyperparameters), what it was trained on in
numbers only (data statistics, never the data), how it scored (`localsft eval`, when
run), whether the export passed its fuse check, the base model's license, and how to
use the folder in each tool.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from localsft.export.check import CheckResult
from localsft.export.merge import Tuned, base_license, base_reference
from localsft.runs.folder import RunFolder
from localsft.runs.names import display_name

# Hub library names (https://huggingface.co/docs/hub/models-libraries); GGUF repos have none: the Hub
# recognizes .gguf files by themselves.
_LIBRARY = {"mlx": "mlx", "adapter": "mlx", "peft": "peft", "hf": "transformers"}
_MAX_TEXT = 80  # longer config strings (prompts, paths) are left out of the card


def _flatten(value, prefix: str = "", numbers_only: bool = False) -> list[tuple[str, object]]:
    """(dotted key, leaf) pairs; numbers_only keeps ints/floats/bools (statistics, never text)."""
    if isinstance(value, dict):
        rows = []
        for key, inner in value.items():
            rows += _flatten(inner, f"{prefix}{key}.", numbers_only)
        return rows
    key = prefix.rstrip(".")
    if isinstance(value, (bool, int, float)):
        return [(key, value)]
    if numbers_only:
        return []
    if isinstance(value, str) and len(value) <= _MAX_TEXT:
        return [(key, value)]
    if isinstance(value, list) and all(isinstance(v, (int, float, str)) for v in value) and len(str(value)) <= _MAX_TEXT:
        return [(key, ", ".join(map(str, value)))]
    return []


def _is_path(value) -> bool:
    return isinstance(value, str) and ("/" in value or "\\" in value)


def _is_repo_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/", "~"))


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def eval_table(results) -> str:
    """Markdown table of `localsft eval` results (eval.json): base vs tuned scores, numbers only.

    The per-example answers eval.json also holds are data and never go into a card.
    """
    if not isinstance(results, dict) or not all(isinstance(results.get(k), dict) for k in ("base", "tuned")):
        return ""
    sides = {k: dict(_flatten(results[k], numbers_only=True)) for k in ("base", "tuned")}
    metrics = list(dict.fromkeys([*sides["tuned"], *sides["base"]]))
    if not metrics:
        return ""
    table = _table(("metric", "base", "tuned"), [(m, sides["base"].get(m, ""), sides["tuned"].get(m, "")) for m in metrics])
    notes = [f"{k}: {_fmt(results[k])}" for k in ("examples", "retention") if isinstance(results.get(k), (int, float))]
    return table + ("\n\n" + ", ".join(notes) if notes else "")


def _local_base_loader(tuned: Tuned) -> str:
    """Python that loads the run's local base in transformers (from its GGUF when it was imported from one)."""
    source = (_read_json(tuned.base_path / "localsft.json") or {}).get("source") or ""
    if source.lower().endswith(".gguf"):  # no local paths in a card: the file's own name, its folder to fill in
        gguf = Path(source)
        return f'AutoModelForCausalLM.from_pretrained("path/to/{gguf.parent.name}", gguf_file="{gguf.name}")'
    return f'AutoModelForCausalLM.from_pretrained(os.path.expanduser("~/.localsft/models/{tuned.base_path.name}"))'


def _ollama_name(name: str) -> str:
    """The run's name as Ollama accepts a model name ("Spring taglines" -> "spring-taglines")."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "my-model"


def usage(fmt: str, out: Path, tuned: Tuned, gguf_name: str = "model.gguf") -> str:
    """How to load this export in the tools people use, run from inside the export folder
    (paths relative to it, so the card is right wherever the folder is copied)."""
    base = base_reference(tuned)
    base = base if _is_repo_id(base) else f"path/to/{Path(base).name}"  # a local folder: never our path
    lines = {
        "mlx": ["```bash", "mlx_lm.generate --model . --prompt \"Hello\"", "```"],
        "adapter": ["```bash", f"mlx_lm.generate --model {base} --adapter-path . --prompt \"Hello\"",
                    "# offline, on the base in your localsft store:",
                    f"mlx_lm.generate --model ~/.localsft/models/{tuned.base_path.name} --adapter-path . "
                    "--prompt \"Hello\"", "```"],
        "hf": ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
               "model = AutoModelForCausalLM.from_pretrained(\".\")",
               "tokenizer = AutoTokenizer.from_pretrained(\".\")", "```"],
        "peft": ["```python", "import os", "from peft import PeftModel", "from transformers import AutoModelForCausalLM",
                 f"base = AutoModelForCausalLM.from_pretrained(\"{base}\")",
                 "model = PeftModel.from_pretrained(base, \".\")",
                 "# offline, on the local base:", f"base = {_local_base_loader(tuned)}",
                 "model = PeftModel.from_pretrained(base, \".\")", "```"],
        "gguf": ["```bash", f"ollama create {_ollama_name(tuned.name)} -f Modelfile && ollama run "
                 f"{_ollama_name(tuned.name)}",
                 f"lms import {gguf_name}   # LM Studio (or drag the file into its My Models tab)",
                 f"llama-cli -m {gguf_name} -cnv", "```"],
    }
    return "Run these inside this folder.\n\n" + "\n".join(lines[fmt])


# The adapter's own settings, named as the run's config names them (one row per setting).
_ADAPTER_KEYS = {"rank": "lora_rank", "dropout": "lora_dropout", "keys": "lora_keys", "scale": "lora_scale"}


def settings_rows(run: RunFolder, tuned: Tuned) -> list[tuple[str, object]]:
    """The training settings, each key once: the run's config (no local paths in a public card),
    completed by what only the adapter records."""
    rows = dict((k, v) for k, v in _flatten(run.config_dict()) if not _is_path(v))
    rows.setdefault("method", tuned.fine_tune_type)
    rows.setdefault("lora_layers", tuned.adapter_config.get("num_layers"))
    for key, value in _flatten(tuned.adapter_config.get("lora_parameters", {})):
        name = _ADAPTER_KEYS.get(key, f"lora_{key}")
        if not (name == "lora_scale" and "lora_alpha" in rows):  # the scale is alpha / rank
            rows.setdefault(name, value)
    return [(k, v) for k, v in rows.items() if v is not None]


def model_card(run: RunFolder, tuned: Tuned, fmt: str, out: Path, check: CheckResult,
               gguf_name: str = "model.gguf") -> str:
    """The README.md text for the export of `run` in format `fmt` at `out`."""
    base = base_reference(tuned)
    license_ = base_license(tuned)
    front = {"base_model": base} if _is_repo_id(base) else {}
    if fmt in _LIBRARY:
        front["library_name"] = _LIBRARY[fmt]
    front["pipeline_tag"] = "text-generation"
    # a merged model is a plain model: only adapter formats are tagged with the method (lora, dora)
    front["tags"] = ["localsft", tuned.fine_tune_type, fmt] if fmt in ("adapter", "peft") else ["localsft", fmt]
    if license_:
        front["license"] = license_
    method = settings_rows(run, tuned)
    shown = base if _is_repo_id(base) else Path(base).name  # a local folder: its name only
    named = f"[{base}](https://huggingface.co/{base})" if _is_repo_id(base) else f"`{shown}` (a local model)"
    parts = [f"---\n{yaml.safe_dump(front, sort_keys=False)}---", f"# {display_name(run.path)}",
             f"A fine-tune of {named} made with localsft "
             f"({tuned.fine_tune_type}). Format: `{fmt}`.",
             "## Method and hyperparameters", _table(("setting", "value"), method)]
    stats = _flatten(_read_json(run.data_dir / "report.json") or {}, numbers_only=True)
    if stats:
        parts += ["## Training data (statistics only)", _table(("statistic", "value"), stats)]
    table = eval_table(_read_json(run.eval_json))
    if table:
        parts += ["## Evaluation", table]
    if fmt in ("adapter", "peft") and tuned.base_quantized:
        parts += ["## Base weights",
                  f"The adapter was trained on a {tuned.base_quantized}-bit copy of {shown} (dequantized). On the "
                  f"full-precision base its outputs can differ slightly from the checked ones; the merged "
                  f"exports (mlx, hf, gguf) carry the exact weights."]
    parts += ["## Export check", check.summary() + ".",
              "## License",
              f"Derived from {shown}; it carries the base model's license: **{license_}**." if license_ else
              f"Derived from {shown}; the base model's license is not recorded here: check its terms.",
              "## How to use", usage(fmt, out, tuned, gguf_name)]
    if tuned.instructions:
        parts += ["The model learned its task under these instructions: send them as the system message "
                  "(the Modelfile of a GGUF export does this for Ollama). Without them a request is answered "
                  "as a general one.", "```text\n" + tuned.instructions + "\n```"]
    return "\n\n".join(parts) + "\n"
