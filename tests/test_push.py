"""`localsft push` against a local stand-in for the Hugging Face Hub (loopback only).

The real Hub cannot be reached from CI, so a small HTTP server on 127.0.0.1 answers the
three calls an upload makes (create repo, preupload, commit) and records what arrives.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from localsft.cli import main
from localsft.errors import UserError
from localsft.export.push import push_run

TOKEN = "hf_localsftTestToken0123456789abcdef"


class FakeHub(BaseHTTPRequestHandler):
    """Answers like the Hub's model upload API; stores requests and files on the server object."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        hub = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hub.requests.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"error": "Invalid credentials in Authorization header"})
        base = f"http://127.0.0.1:{hub.server_port}"
        if self.path == "/api/repos/create":
            hub.created.append(json.loads(body))
            payload = hub.created[-1]
            return self._reply(200, {"url": f"{base}/{payload['organization']}/{payload['name']}"})
        if self.path == "/api/validate-yaml":  # the model card's front matter
            hub.card_metadata.append(yaml.safe_load(json.loads(body)["content"].split("---")[1]))
            return self._reply(200, {"errors": [], "warnings": []})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                               for f in files]})
        if "/commit/" in self.path:
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    hub.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            repo = self.path.split("/api/models/")[1].split("/commit/")[0]
            return self._reply(200, {"commitUrl": f"{base}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40})
        return self._reply(404, {"error": f"unexpected {self.path}"})

    def do_GET(self):
        self.server.requests.append((f"GET {self.path}", self.headers.get("Authorization")))
        return self._reply(404, {"error": f"unexpected {self.path}"})


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub.constants

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    server.requests, server.created, server.files, server.card_metadata = [], [], {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # conftest sets offline mode
    yield server
    server.shutdown()
    server.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_push_uploads_every_file_intact_and_never_writes_the_token(fake_hub, tiny_run, capsys):
    assert main(["push", str(tiny_run), "--repo", "alice/tagline-model", "--private"]) == 0
    folder = tiny_run / "exports" / "adapter"  # exported on the way, since it was missing
    local = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
             if p.is_file() and p.name != ".localsft-files.json"}  # localsft's list of what it wrote
    assert {"README.md", "adapter_config.json", "adapters.safetensors"} <= set(local)
    assert {k: _sha(v) for k, v in fake_hub.files.items()} == {k: _sha(v) for k, v in local.items()}
    assert fake_hub.created == [{"name": "tagline-model", "organization": "alice", "visibility": "private",
                                 "type": "model"}]
    assert all(auth == f"Bearer {TOKEN}" for _, auth in fake_hub.requests)
    assert fake_hub.card_metadata[0]["library_name"] == "mlx" and "lora" in fake_hub.card_metadata[0]["tags"]
    out = capsys.readouterr()
    assert "alice/tagline-model" in out.out
    assert TOKEN not in out.out + out.err
    assert _files_containing(tiny_run, TOKEN.encode()) == []


def test_push_of_a_merged_format_uploads_the_model_card(fake_hub, tiny_run, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")  # the token given in the call (the app's password field) is used
    result = push_run(tiny_run, "alice/tuned-gguf", fmt="gguf", token=TOKEN)
    assert result.commit_url.endswith("/alice/tuned-gguf/commit/" + "a" * 40)
    assert "ollama create" in fake_hub.files["README.md"].decode()
    gguf = [name for name in fake_hub.files if name.endswith(".gguf")]
    assert gguf and fake_hub.files[gguf[0]] == (tiny_run / "exports" / "gguf" / gguf[0]).read_bytes()


def test_bad_token_is_one_plain_message_without_the_token(fake_hub, tiny_run, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_wrongTokenValue42")
    assert main(["push", str(tiny_run), "--repo", "alice/x"]) == 2
    err = capsys.readouterr().err
    assert "refused the token (HTTP 401)" in err and "Traceback" not in err
    assert "hf_wrongTokenValue42" not in err


def test_no_network_is_one_plain_message(tiny_run, monkeypatch):
    import socket

    import huggingface_hub.constants

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(UserError, match="Cannot reach the Hugging Face Hub"):
        push_run(tiny_run, "alice/x")


def test_missing_token_and_bad_repo_are_plain_messages(tiny_run, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tiny_run / "no-login-cache"))
    with pytest.raises(UserError, match="must look like USER/NAME"):
        push_run(tiny_run, "just-a-name")
    with pytest.raises(UserError, match="No Hugging Face token"):
        push_run(tiny_run, "alice/x")
