"""Fetch a model repository from the Hugging Face Hub (safetensors only)."""

from __future__ import annotations

import os
from pathlib import Path

from localsft.errors import UserError

_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]


def download_repo(repo_id: str, progress: bool = True) -> Path:
    """Download (or reuse from the hub cache) the files a model needs; returns the folder."""
    import huggingface_hub
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError)

    offline_hint = ("To use a model without the network, download it on another machine and run "
                    "`localsft models add /path/to/model-folder` or `localsft models add model.gguf`.")
    if not progress:
        huggingface_hub.utils.disable_progress_bars()
    try:
        folder = huggingface_hub.snapshot_download(repo_id, allow_patterns=_PATTERNS, etag_timeout=5,
                                                   cache_dir=os.environ.get("HF_HUB_CACHE"))
    except (GatedRepoError, RepositoryNotFoundError):
        raise UserError(f"Hugging Face repo {repo_id!r} was not found or needs access rights "
                        f"(log in with `hf auth login`).") from None
    except LocalEntryNotFoundError:
        raise UserError(f"Cannot download {repo_id!r}: no network connection to the Hugging Face Hub "
                        f"and the model is not in the local cache. {offline_hint}") from None
    except OSError as err:
        raise UserError(f"Cannot download {repo_id!r}: {err.__class__.__name__}. {offline_hint}") from None
    return Path(folder)
