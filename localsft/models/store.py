"""The models store: one MLX model folder per model under `<home>/models/<name>`.

Sources: a Hugging Face repo id, a local folder (Hugging Face or MLX layout) or a
`.gguf` file. Each stored folder carries `localsft.json` saying where it came from.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from localsft import paths
from localsft.errors import UserError
from localsft.models.default import default_gguf_path

SOURCE_FILE = "localsft.json"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class ModelInfo:
    """What `localsft models list` shows for one stored model."""

    name: str
    path: Path
    architecture: str
    parameters: int
    precision: str
    size_bytes: int
    source: str
    license: str | None = None


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _count_parameters(config: dict) -> int:
    """Parameter count of a llama-style model from its config (exact for llama)."""
    h, layers = config.get("hidden_size", 0), config.get("num_hidden_layers", 0)
    inter, vocab = config.get("intermediate_size", 0), config.get("vocab_size", 0)
    heads = config.get("num_attention_heads", 1)
    head_dim = config.get("head_dim") or h // max(heads, 1)
    kv = config.get("num_key_value_heads", heads) * head_dim
    attn = h * heads * head_dim * 2 + h * kv * 2
    per_layer = attn + 3 * h * inter + 2 * h
    embed = vocab * h * (1 if config.get("tie_word_embeddings", True) else 2)
    return layers * per_layer + embed + h


def _precision(config: dict) -> str:
    quant = config.get("quantization") or config.get("quantization_config")
    if quant:
        return f"{quant.get('bits', '?')}-bit"
    return str(config.get("torch_dtype") or config.get("dtype") or "float")


def model_info(path: Path) -> ModelInfo:
    """Describe the model folder at `path`."""
    config = json.loads((path / "config.json").read_text())
    source = {}
    if (path / SOURCE_FILE).exists():
        source = json.loads((path / SOURCE_FILE).read_text())
    return ModelInfo(
        name=path.name, path=path, architecture=config.get("model_type", "?"),
        parameters=_count_parameters(config), precision=_precision(config),
        size_bytes=_folder_size(path), source=source.get("source", str(path)),
        license=source.get("license"),
    )


def list_models() -> list[ModelInfo]:
    """Every model in the store, by name."""
    root = paths.models_dir()
    return [model_info(p) for p in sorted(root.iterdir()) if (p / "config.json").exists()]


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").exists() and any(path.glob("*.safetensors"))


def resolve_model(name_or_path: str | None) -> Path:
    """Folder of a model given by store name or path; None means the default model."""
    name = name_or_path or paths.DEFAULT_MODEL
    candidate = Path(name).expanduser()
    if candidate.is_dir() and _is_model_folder(candidate):
        return candidate
    stored = paths.models_dir() / name
    if _is_model_folder(stored):
        return stored
    if name == paths.DEFAULT_MODEL:
        return install_default_model()
    known = ", ".join(m.name for m in list_models()) or "none yet"
    raise UserError(f"Model not found: {name}. Models in the store: {known}. "
                    f"Add one with: localsft models add SOURCE")


def _default_name(source: str) -> str:
    stem = Path(source.rstrip("/")).name
    return re.sub(r"\.gguf$", "", stem, flags=re.I) or "model"


def _write_source(folder: Path, source: str, license_: str | None = None) -> None:
    (folder / SOURCE_FILE).write_text(json.dumps({"source": source, "license": license_}, indent=2))


def mlx_lm_config(config: dict) -> dict:
    """The config with the keys mlx-lm reads, for configs written by transformers 5.

    transformers 5 writes RoPE settings as `rope_parameters` (per layer type for Gemma 3);
    mlx-lm 0.32 reads `rope_theta` / `rope_scaling` / `rope_local_base_freq` and silently
    falls back to its defaults, which runs the model with the wrong positions.
    """
    config = dict(config)
    layer_types = config.get("layer_types")
    if isinstance(layer_types, list) and "full_attention" in layer_types:  # Gemma 3: 5 local layers, 1 global
        config.setdefault("sliding_window_pattern", layer_types.index("full_attention") + 1)
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict):
        return config
    full, local = rope.get("full_attention", rope), rope.get("sliding_attention")
    if "rope_theta" in full:
        config.setdefault("rope_theta", full["rope_theta"])
    if full.get("rope_type", "default") != "default":
        scaling = {k: v for k, v in full.items() if k != "rope_theta"}
        config.setdefault("rope_scaling", {**scaling, "type": scaling["rope_type"]})  # mlx-lm's Phi-3 reads "type"
    if isinstance(local, dict) and "rope_theta" in local:
        config.setdefault("rope_local_base_freq", local["rope_theta"])
    return config


def _copy_folder(src: Path, dest: Path) -> None:
    if not (src / "config.json").exists():
        raise UserError(f"{src} has no config.json: it is not a Hugging Face or MLX model folder.")
    if not any(src.glob("*.safetensors")):
        raise UserError(f"{src} has no .safetensors weights (localsft loads only safetensors).")
    dest.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith((".bin", ".pt", ".pth", ".pkl")):
            shutil.copy2(f, dest / f.name)
    config = json.loads((src / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps(mlx_lm_config(config), indent=2))


def install_default_model() -> Path:
    """Import the embedded default model into the store if needed; returns its folder."""
    folder = paths.models_dir() / paths.DEFAULT_MODEL
    if (folder / "config.json").exists():
        return folder
    return add_model(str(default_gguf_path()), name=paths.DEFAULT_MODEL).path


def add_model(source: str, name: str | None = None, progress: bool = True) -> ModelInfo:
    """Add a model to the store from a repo id, a local folder or a .gguf file."""
    name = name or _default_name(source)
    dest = paths.models_dir() / name
    if dest.exists():
        raise UserError(f"A model named {name!r} is already in the store ({dest}). "
                        f"Choose another name with --name.")
    src = Path(source).expanduser()
    tmp = dest.with_name(f".{name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if src.is_file() and src.suffix.lower() == ".gguf":
            from localsft.models.gguf_import import import_gguf, read_gguf

            import_gguf(src, tmp)
            _write_source(tmp, str(src.resolve()), _gguf_license(src))
        elif src.is_dir():
            _copy_folder(src, tmp)
            _write_source(tmp, str(src.resolve()))
        elif src.exists():
            raise UserError(f"{src} is neither a .gguf file nor a model folder.")
        elif _REPO_ID.match(source) and not source.startswith((".", "/", "~")):
            from localsft.models.hub import download_repo

            _copy_folder(download_repo(source, progress=progress), tmp)
            _write_source(tmp, f"hf://{source}")
        else:
            raise UserError(f"Not found: {source}. Give a Hugging Face repo id (user/name), "
                            f"a model folder or a .gguf file.")
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model_info(dest)


def _gguf_license(path: Path) -> str | None:
    from localsft.models.gguf_import import read_gguf

    _, meta = read_gguf(path)
    value = meta.get("general.license")
    return value if isinstance(value, str) else None
