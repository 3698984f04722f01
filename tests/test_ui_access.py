"""`localsft ui` security settings: loopback by default, a login for anything wider, no gradio in the library."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from localsft.cli import build_parser, main
from localsft.commands.ui import access_settings, is_loopback, parse_auth
from localsft.errors import UserError


def test_defaults_bind_loopback_without_share():
    args = build_parser("ui").parse_args(["ui"])
    assert (args.host, args.port, args.auth, args.share) == ("127.0.0.1", 7860, None, False)
    assert access_settings(args.host, args.auth, args.share) == ("127.0.0.1", None)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "my-laptop.local"])
def test_other_hosts_need_a_login(host, monkeypatch):
    monkeypatch.delenv("LOCALSFT_AUTH", raising=False)
    assert not is_loopback(host)
    with pytest.raises(UserError, match="needs a login: set LOCALSFT_AUTH=USER:PASS"):
        access_settings(host, None, False)
    assert access_settings(host, "ann:s3cret-pass", False) == (host, ("ann", "s3cret-pass"))


def test_login_from_environment(monkeypatch):
    monkeypatch.setenv("LOCALSFT_AUTH", "bob:pw:with:colons")
    assert access_settings("0.0.0.0", None, False) == ("0.0.0.0", ("bob", "pw:with:colons"))


def test_share_link_needs_a_login(monkeypatch):
    monkeypatch.delenv("LOCALSFT_AUTH", raising=False)
    with pytest.raises(UserError, match="share link"):
        access_settings("127.0.0.1", None, True)


@pytest.mark.parametrize("value", ["nocolon", ":pw", "user:"])
def test_malformed_login_is_a_plain_error(value):
    with pytest.raises(UserError, match="USER:PASS"):
        parse_auth(value)


def test_cli_refuses_public_host_without_login(capsys, monkeypatch):
    monkeypatch.delenv("LOCALSFT_AUTH", raising=False)
    assert main(["ui", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Listening on 0.0.0.0") and "Traceback" not in err


def test_library_and_cli_do_not_import_gradio():
    code = ("import sys, localsft.cli, localsft.runs.jobs, localsft.commands.ui; localsft.cli.build_parser(); "
            "print('gradio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_public_host_really_asks_for_the_login():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LOCALSFT_AUTH": "ann:s3cret-pass", "GRADIO_ANALYTICS_ENABLED": "False"}
    app = subprocess.Popen([sys.executable, "-m", "localsft", "ui", "--host", "0.0.0.0", "--port", str(port)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"

    def status(path: str, data: dict | None = None) -> int:
        body = urllib.parse.urlencode(data).encode() if data else None
        try:
            return urllib.request.urlopen(base + path, data=body, timeout=5).status
        except urllib.error.HTTPError as err:
            return err.code

    try:
        assert "(login required)" in app.stdout.readline()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status("/config") not in (200, 401):
            time.sleep(0.5)
        assert status("/config") == 401  # nothing without the login
        rebound = urllib.request.Request(base + "/", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError, match="421"):  # a name that is not this machine's
            urllib.request.urlopen(rebound, timeout=5)
        assert status("/login", {"username": "ann", "password": "wrong"}) == 400
        assert status("/login", {"username": "ann", "password": "s3cret-pass"}) == 200
    finally:
        app.terminate()
        app.wait(30)


def test_help_loads_no_mlx_and_imports_only_the_chosen_verb():
    code = ("import sys, localsft.cli\n"
            "try:\n    localsft.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm')))\n"
            "print(sorted(m for m in sys.modules if m.startswith('localsft.commands.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-2:] == ["[]", "[]"]
    result = subprocess.run([sys.executable, "-m", "localsft", "recipes", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "list training recipes" in result.stdout


def test_short_passwords_are_refused(monkeypatch):
    monkeypatch.setenv("LOCALSFT_AUTH", "ann:1234567")
    with pytest.raises(UserError, match="too short: use at least 8 characters"):
        access_settings("0.0.0.0", None, False)


def test_login_from_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv("LOCALSFT_AUTH", raising=False)
    login = tmp_path / "login.txt"
    login.write_text("ann:from-a-file-123\n")
    assert access_settings("0.0.0.0", None, False, str(login)) == ("0.0.0.0", ("ann", "from-a-file-123"))
    with pytest.raises(UserError, match="Cannot read the login file .*missing.txt: No such file"):
        access_settings("0.0.0.0", None, False, str(tmp_path / "missing.txt"))
    with pytest.raises(UserError, match="not both"):
        access_settings("0.0.0.0", "ann:long-enough", False, str(login))


def test_a_password_on_the_command_line_gets_a_warning(capsys):
    # (--max-upload-mb 0 stops it right after the checks, before anything is served)
    assert main(["ui", "--auth", "ann:long-enough", "--max-upload-mb", "0"]) == 2
    err = capsys.readouterr().err
    assert "visible to every user of this machine (ps)" in err and "LOCALSFT_AUTH" in err
    assert "--max-upload-mb must be a positive number" in err and "Traceback" not in err
