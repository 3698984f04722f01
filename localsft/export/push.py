"""Publish an export folder (model card included) to the Hugging Face Hub.

The token comes from huggingface_hub itself (HF_TOKEN, or the login cache written by
`hf auth login`); localsft never writes it anywhere, never logs it, never puts it in a
message. HF_ENDPOINT is read when pushing, so a private Hub mirror (or a test server) works.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localsft.errors import UserError
from localsft.export.pipeline import CHECK_FILE, export_run
from localsft.manifest import Manifest
from localsft.runs.folder import RunFolder

PUSHABLE = ("adapter", "peft", "hf", "gguf", "mlx")


@dataclass
class PushResult:
    """What was uploaded where."""

    repo_url: str
    commit_url: str
    folder: Path
    files: list[str]
    size_bytes: int


def _transport_errors() -> tuple[type[Exception], ...]:
    """Network error classes of the HTTP client huggingface_hub uses (httpx2 in 2.x, httpx in 1.x)."""
    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _plain_error(err: Exception, repo: str) -> UserError:
    """One sentence for whatever went wrong talking to the Hub (never repeating the token)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    where = _endpoint()
    if isinstance(err, OfflineModeIsEnabled):
        return UserError(f"Cannot push to {where}: offline mode is on (unset HF_HUB_OFFLINE).")
    if isinstance(err, ValueError):  # huggingface_hub's "Invalid metadata in README.md"
        return UserError(f"The Hugging Face Hub at {where} rejected the upload to {repo}: {err}")
    if isinstance(err, HfHubHTTPError):
        status = getattr(err.response, "status_code", None)
        if status in (401, 403):
            return UserError(f"The Hugging Face Hub at {where} refused the token (HTTP {status}): check HF_TOKEN "
                             f"or run `hf auth login` with a token that can write to {repo}.")
        return UserError(f"The Hugging Face Hub at {where} answered HTTP {status} while pushing to {repo}.")
    return UserError(f"Cannot reach the Hugging Face Hub at {where}: no network connection "
                     f"({err.__class__.__name__}). The export stays on disk; push again when online.")


def _export_folder(run: RunFolder, fmt: str, on_progress: Callable[[str], None]) -> Path:
    folder = run.exports_dir(fmt)
    if not (folder / CHECK_FILE).exists():
        on_progress(f"no {fmt} export yet: exporting first")
        export_run(run.path, fmt, on_progress=on_progress)
    return folder


def push_run(run_dir: str | Path, repo: str, fmt: str = "adapter", private: bool = False,
             on_progress: Callable[[str], None] | None = None, token: str | None = None) -> PushResult:
    """Create `repo` (if needed) and upload the run's `fmt` export folder to it in one commit.

    token: a Hub token held only in memory for this call (the UI's password field);
    None: huggingface_hub's own (HF_TOKEN or the login cache).
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    say = on_progress or (lambda _msg: None)
    if fmt not in PUSHABLE:
        raise UserError(f"Cannot push format {fmt!r}: choose one of {', '.join(PUSHABLE)}.")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UserError(f"--repo must look like USER/NAME (got {repo!r}).")
    run = RunFolder.open(run_dir)
    folder = _export_folder(run, fmt, say)
    if not (token or get_token()):
        raise UserError("No Hugging Face token: set HF_TOKEN or run `hf auth login` first.")
    files = sorted(Manifest(folder).files)  # what localsft wrote: never files the user added to the folder
    files = files or sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())  # (an older export)
    size = sum((folder / f).stat().st_size for f in files)
    api = HfApi(endpoint=_endpoint(), token=token or None)
    try:
        say(f"creating {repo} on {_endpoint()}{' (private)' if private else ''}")
        repo_url = api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
        say(f"uploading {len(files)} files ({size / 2**20:.1f} MB) from {folder}")
        commit = api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="model", allow_patterns=files,
                                   commit_message=f"Upload {fmt} export of {run.name} (localsft)")
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError, ValueError, *_transport_errors()) as err:
        raise _plain_error(err, repo) from None
    return PushResult(str(repo_url), str(commit.commit_url), folder, files, size)
