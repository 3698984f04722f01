"""The studio as a hostile client sees it: Gradio API calls with paths, other routes, other hosts, guessing.

Each test serves the real app (ui/app.py `serve`, the same gate and settings as `localsft ui`)
on a free loopback port and talks to it over HTTP: gradio_client, or raw requests where a
browser or a script could send anything.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import time
import uuid
from pathlib import Path

import pytest

from localsft import paths

SECRET = "TOPSECRET-7f3a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve_app():
    """Start the studio (without the default model: nothing here gets as far as loading one)."""
    from localsft_ui.app import build, serve

    apps = []

    def start(**settings):
        demo = serve(build(), port=free_port(), **settings)
        apps.append(demo)
        return demo

    yield start
    for demo in apps:
        demo.close()


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the home holding a CSV that must never be read through the app."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.csv").write_text("prompt,response\n" + f"{SECRET} question,{SECRET} answer\n" * 30)
    return folder


def request(url: str, path: str, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None, source: str | None = None) -> tuple[int, dict, bytes]:
    """One raw HTTP request: (status, lower-case headers, body)."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def queue_call(demo, api_name: str, data: list) -> dict:
    """Call an event the way the page does (queue/join, then its event stream); the final message."""
    fn_index = next(i for i, fn in demo.fns.items() if fn.api_name == api_name)
    session = uuid.uuid4().hex[:10]
    body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": session, "trigger_id": None,
                       "event_data": None}).encode()
    status, _, answer = request(demo.local_url, "/gradio_api/queue/join", "POST", body,
                                {"Content-Type": "application/json"})
    assert status == 200, answer
    status, _, stream = request(demo.local_url, f"/gradio_api/queue/data?session_hash={session}")
    events = [json.loads(line[5:]) for line in stream.decode().splitlines() if line.startswith("data:")]
    return next(e for e in events if e.get("msg") == "process_completed")


def assert_nothing_leaked(*answers) -> None:
    """No answer echoes the secret, and no file in the home folder holds it."""
    for answer in answers:
        assert SECRET not in json.dumps(answer)
    for path in paths.home().rglob("*"):
        if path.is_file() and not path.is_symlink():  # (the test's own link to the secret)
            assert SECRET.encode() not in path.read_bytes(), path


# ---- 1. settings from the browser never name files ---------------------------------------------
def test_api_calls_with_paths_read_copy_and_echo_nothing(serve_app, outside):
    import gradio as gr
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from localsft_ui import data_tab

    demo = serve_app()
    client = Client(demo.local_url, verbose=False)
    secret = str(outside / "secret.csv")
    (paths.uploads_dir() / "link.csv").symlink_to(secret)  # a link out of uploads/ counts where it points
    advanced = [0, 3, 0, 0, 0]
    hostile = {
        "/show_plan": ("SmolLM2-135M-Instruct", "brand-voice", *advanced, f"data={secret}"),
        "/start": ("SmolLM2-135M-Instruct", "brand-voice", *advanced, f"data={secret}"),
        "/add_model": (str(outside), None),
    }
    messages = {}
    for api_name, args in hostile.items():
        with pytest.raises(AppError) as err:
            client.predict(*args, api_name=api_name)
        messages[api_name] = str(err.value)
    assert "names a file or folder" in messages["/show_plan"] and "names a file or folder" in messages["/start"]
    assert "not from folders on this machine" in messages["/add_model"]
    for key in ("model=/etc", " Out = /tmp/x", "resume=/tmp", "--data=/etc/passwd"):
        with pytest.raises(AppError, match="names a file or folder|Unknown setting"):
            client.predict("SmolLM2-135M-Instruct", None, *advanced, key, api_name="/show_plan")

    # Values a page never sends: the examples state, a recipe file, a model folder, an upload not uploaded.
    raw = [queue_call(demo, "show_plan", [secret, "SmolLM2-135M-Instruct", None, *advanced, ""]),
           queue_call(demo, "show_plan", [None, str(outside), None, *advanced, ""]),
           queue_call(demo, "show_plan", [None, None, secret.replace(".csv", ".yaml"), *advanced, ""]),
           queue_call(demo, "use_example", ["../../outside/secret.csv"]),
           queue_call(demo, "use_upload", [{"path": secret, "meta": {"_type": "gradio.FileData"}}])]
    assert all(not answer["success"] for answer in raw), raw
    with pytest.raises(gr.Error, match="does not open other files"):  # the handler behind those states
        data_tab.check_file(str(paths.uploads_dir() / "link.csv"), None, None, None, None)
    assert not any(paths.runs_dir().iterdir())
    assert_nothing_leaked(messages, raw)
    assert [p.name for p in paths.models_dir().iterdir()] in ([], ["SmolLM2-135M-Instruct"])


def test_uploads_and_example_sets_still_work_through_the_api(serve_app, tmp_path):
    from gradio_client import Client, handle_file

    demo = serve_app()
    client = Client(demo.local_url, verbose=False)
    mine = tmp_path / "mine.csv"
    mine.write_text("prompt,response\nhi,hello\n")
    client.predict(handle_file(str(mine)), api_name="/use_upload")
    assert (paths.uploads_dir() / "mine.csv").read_text() == mine.read_text()
    client.predict("brand_voice.csv", api_name="/use_example")  # no error: an example set, by name
