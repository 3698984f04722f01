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
from localsft.errors import UserError

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


# ---- 2. only the studio's routes, and with a login, all of them behind it ------------------------
LOGIN = ("ann", "correct-horse")
PUBLIC = {"/", "/login", "/login/", "/assets/{path:path}", "/static/{path:path}", "/svelte/{path:path}",
          "/favicon.ico", "/robots.txt", "/manifest.json", "/pwa_icon", "/pwa_icon/{size}", "/theme.css",
          "/gradio_api/theme.css", "/gradio_api/startup-events"}


def concrete(path: str) -> str:
    """A route's path with sample values for its parameters."""
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: "etc/hostname" if m.group(2) else "x1", path)


def app_routes(routes, prefix: str = "") -> list[tuple[str, list[str]]]:
    """(path, methods) of every route of a FastAPI app, routers included in it flattened."""
    found = []
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's record of an include_router()
            found += app_routes(route.original_router.routes, prefix + route.include_context.prefix)
        else:
            found.append((prefix + route.path, sorted(getattr(route, "methods", None) or {"GET"})))
    return found


def login_cookie(url: str, password: str = LOGIN[1], source: str | None = None) -> tuple[int, str, dict]:
    body = f"username={LOGIN[0]}&password={password}".encode()
    status, headers, _ = request(url, "/login", "POST", body,
                                 {"Content-Type": "application/x-www-form-urlencoded"}, source=source)
    return status, headers.get("set-cookie", "").split(";")[0], headers


def test_every_route_follows_the_login_rule(serve_app):
    from localsft_ui.security import route_rule

    demo = serve_app(auth=LOGIN)
    routes = app_routes(demo.app.routes)
    assert not any("run-history" in path for path, _ in routes)  # switched off (run_history=False)
    assert {"/gradio_api/vibe-code", "/monitoring", "/gradio_api/proxy={url_path:path}"} <= {p for p, _ in routes}
    _, cookie, _ = login_cookie(demo.local_url)
    for path, methods in routes:
        method = next((m for m in methods if m != "HEAD"), "GET")
        url_path, rule = concrete(path), route_rule(concrete(path))
        status, _, _ = request(demo.local_url, url_path, method)
        if rule == "public":
            assert path in PUBLIC and status != 401, (path, status)
        elif rule == "gone":
            assert status == 404, (path, status)
        else:
            assert rule == "login" and status == 401, (path, rule, status)
            if not re.search("heartbeat|queue/data|logout", path):  # (endless streams; logging out)
                status, _, _ = request(demo.local_url, url_path, method, headers={"Cookie": cookie})
                assert status not in (401, 404), (path, status)
    for path in ("/gradio_api/run-history/buckets", "/gradio_api/run-history/records", "/gradio_api/runs",
                 "/gradio_api/monitoring", "/gradio_api/vibe-code", "/gradio_api/openapi.json",
                 "/gradio_api/file=https://example.com/x"):
        assert request(demo.local_url, path, headers={"Cookie": cookie})[0] == 404, path


def test_without_a_login_unused_routes_are_still_gone(serve_app):
    demo = serve_app()
    assert request(demo.local_url, "/")[0] == 200
    status, _, body = request(demo.local_url, "/gradio_api/run-history/connect", "POST",
                              json.dumps({"bucket_id": "attacker/bucket"}).encode(),
                              {"Content-Type": "application/json"})
    assert status == 404 and b"bucket" not in body


# ---- 3. DNS rebinding: other host names and other sites are refused ------------------------------
def test_other_host_names_and_origins_are_refused(serve_app):
    demo = serve_app()
    port = demo.server_port
    status, headers, body = request(demo.local_url, "/config", headers={"Host": "evil.example",
                                                                       "Origin": "http://evil.example"})
    assert status == 421 and "access-control-allow-origin" not in headers
    assert "localsft ui --allowed-host evil.example" in json.loads(body)["detail"]
    status, headers, _ = request(demo.local_url, "/config", headers={"Origin": "http://evil.example"})
    assert status == 403 and "access-control-allow-origin" not in headers
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        status, headers, _ = request(demo.local_url, "/config", headers={"Host": host, "Origin": f"http://{host}"})
        assert status == 200 and headers["access-control-allow-origin"] == f"http://{host}"


def test_host_rule():
    from localsft_ui.security import HostRule

    loopback = HostRule("127.0.0.1")
    assert all(loopback.allows(n) for n in ("localhost", "127.0.0.1", "127.0.0.2", "::1"))
    assert not any(loopback.allows(n) for n in ("evil.example", "192.168.1.20", "localhost.evil.example", None))
    everywhere = HostRule("0.0.0.0", {"studio.lan"})
    assert everywhere.allows("192.168.1.20") and everywhere.allows("studio.lan")
    assert not everywhere.allows("evil.example")
    assert HostRule("my-box.local").allows("my-box.local") and HostRule("127.0.0.1", {"*"}).allows("evil.example")


# ---- 4. password guessing backs off, per client ------------------------------------------------
def test_failed_logins_back_off_per_client(serve_app):
    demo = serve_app(auth=LOGIN)
    url = demo.local_url
    assert [login_cookie(url, "wrong-guess")[0] for _ in range(3)] == [400, 400, 400]
    status, _, headers = login_cookie(url)  # even the right password waits now
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert login_cookie(url, source="127.0.0.2")[0] == 200  # another client is not held up
    time.sleep(int(headers["retry-after"]))
    status, cookie, _ = login_cookie(url)
    assert status == 200 and cookie
    assert login_cookie(url, "wrong-guess")[0] == 400  # a success starts the count again


# ---- 5. only downloads are served; uploads have a size limit and old ones go ---------------------
def test_only_what_the_app_offers_for_download_is_served(serve_app):
    from localsft_ui.served_files import downloads_dir

    demo = serve_app()
    private = paths.runs_dir() / "run-1" / "data" / "train.jsonl"
    private.parent.mkdir(parents=True)
    private.write_text(SECRET)
    (paths.uploads_dir() / "mine.csv").write_text(SECRET)
    offered = downloads_dir() / "run-1-peft.zip"
    offered.write_bytes(b"PK zip")
    for path in (private, paths.uploads_dir() / "mine.csv", paths.models_dir()):
        status, _, body = request(demo.local_url, f"/gradio_api/file={path}")
        assert status in (403, 404) and SECRET.encode() not in body, path
    assert request(demo.local_url, f"/gradio_api/file={offered}")[2] == b"PK zip"


def upload(url: str, name: str, content: bytes) -> int:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return request(url, "/gradio_api/upload", "POST", body,
                   {"Content-Type": f"multipart/form-data; boundary={boundary}"})[0]


def test_uploads_have_a_size_limit(serve_app):
    demo = serve_app(max_upload_mb=1)
    assert upload(demo.local_url, "small.csv", b"prompt,response\nhi,hello\n") == 200
    assert upload(demo.local_url, "big.csv", b"x" * (1024 * 1024 + 4096)) == 413


def test_old_uploads_that_localsft_wrote_are_removed():
    from localsft_ui import served_files

    uploads = paths.uploads_dir()
    week_ago = time.time() - 8 * 86400
    for name in ("old.csv", "recent.csv", "edited.csv", "users-own.csv"):
        (uploads / name).write_text(name)
        if name != "recent.csv":
            os.utime(uploads / name, (week_ago, week_ago))
        if name != "users-own.csv":
            served_files.keep(uploads / name)
    (uploads / "edited.csv").write_text("changed by the user")
    os.utime(uploads / "edited.csv", (week_ago, week_ago))
    assert served_files.remove_old() == [uploads / "old.csv"]
    assert sorted(p.name for p in uploads.iterdir() if not p.name.startswith(".")) == [
        "edited.csv", "recent.csv", "users-own.csv"]


# ---- 6. a file that would eat the memory is stopped in a child; the app stays up -----------------
def xlsx_bomb(path: Path, megabytes: int) -> Path:
    """A valid .xlsx of a few hundred KB whose one cell unpacks to `megabytes` MB."""
    import io
    import zipfile

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["prompt", "response"])
    book.active.append(["BOMB", "ok"])
    plain = io.BytesIO()
    book.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if b"BOMB" not in data:
                out.writestr(item, data)
                continue
            head, tail = data.split(b"BOMB")
            with out.open(item.filename, "w", force_zip64=True) as fh:
                fh.write(head)
                for _ in range(megabytes):
                    fh.write(b"x" * (1 << 20))
                fh.write(tail)
    return path


def test_a_memory_bomb_is_stopped_in_a_child_and_the_app_stays_up(monkeypatch):
    import resource

    from localsft_ui import data_tab, isolated_read

    bomb = xlsx_bomb(paths.uploads_dir() / "bomb.xlsx", 300)  # ~300 KB; reading it took 680 MB here
    assert bomb.stat().st_size < 1_000_000
    monkeypatch.setattr(isolated_read, "MEMORY_MB", 250)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary = data_tab.check_file(str(bomb), None, None, None, None)[2]  # the Data tab says so in a sentence
    assert "bomb.xlsx needed more than 250 MB of memory, so it was stopped (the app is fine)" in summary
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KB: this process read nothing
    ok = paths.uploads_dir() / "ok.csv"
    ok.write_text("prompt,response\nhi,hello\n")
    assert isolated_read.read_columns(ok) == ["prompt", "response"]
    with pytest.raises(UserError, match="ok.csv is empty|no .* rows|empty"):
        ok.write_text("")
        isolated_read.read_columns(ok)  # the readers' own plain messages come through


def test_the_watch_stops_a_child_that_grows_past_the_limit():
    """Where the kernel ignores the child's own limit (macOS), the parent's watch still stops it."""
    import subprocess
    import sys

    from localsft_ui.isolated_read import _watch

    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(400 << 20); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert _watch(child, memory_mb=100, seconds=20)[1] == "big"
    finally:
        child.kill()
        child.wait()


def test_recipes_are_taken_by_name_only(tmp_path):
    import gradio as gr

    from localsft_ui import train_tab

    recipe_file = tmp_path / "mine.yaml"
    recipe_file.write_text(f"description: {SECRET}\n")
    with pytest.raises(UserError, match="no recipe named"):
        train_tab.recipe_info(str(recipe_file))
    assert "minutes" in train_tab.recipe_info("brand-voice")
    with pytest.raises(gr.Error, match="no recipe named"):
        train_tab.show_plan(None, None, str(recipe_file), 0, 0, 0, 0, 0, "")


def test_resume_takes_only_runs_of_the_store(outside):
    import gradio as gr

    from localsft_ui import train_tab

    for folder in (outside, paths.runs_dir() / ".." / "uploads", paths.runs_dir() / "no-such-run"):
        with pytest.raises(gr.Error, match="not in the runs store"):
            train_tab.resume(str(folder))
