"""`localsft ui`: start the studio (a Gradio app in the browser).

Private by default: it listens on 127.0.0.1 only and answers only to loopback host names.
Listening on any other address needs a login (LOCALSFT_AUTH=USER:PASS or `--auth-file FILE`;
`--auth USER:PASS` works but shows the password to anyone running `ps`), and a public share
link is made only with `--share`. Gradio is imported inside `run`, so the library never imports it.
"""

from __future__ import annotations

import ipaddress
import os

from localsft.errors import UserError

AUTH_ENV = "LOCALSFT_AUTH"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MIN_PASSWORD = 8
DEFAULT_MAX_UPLOAD_MB = 50


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.x, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """`USER:PASS` as a (user, password) pair; None when not given."""
    if not value:
        return None
    user, sep, password = value.strip("\r\n").partition(":")
    if not sep or not user or not password:
        raise UserError(f"The login ({AUTH_ENV}, --auth-file or --auth) must look like USER:PASS, "
                        f"with both parts non-empty.")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"The login's password is too short: use at least {MIN_PASSWORD} characters.")
    return user, password


def read_auth_file(path: str) -> str:
    """The USER:PASS line of a login file (its first line)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().strip("\r\n")
    except OSError as err:
        raise UserError(f"Cannot read the login file {path}: {err.strerror}.") from None
    except UnicodeDecodeError:
        raise UserError(f"The login file {path} is not text; it should hold one line USER:PASS.") from None


def login_value(auth: str | None, auth_file: str | None) -> str | None:
    """The USER:PASS text from --auth, --auth-file or LOCALSFT_AUTH (in that order)."""
    if auth and auth_file:
        raise UserError("Give the login once: --auth or --auth-file, not both.")
    if auth_file:
        return read_auth_file(auth_file)
    return auth or os.environ.get(AUTH_ENV)


def access_settings(host: str, auth: str | None, share: bool,
                    auth_file: str | None = None) -> tuple[str, tuple[str, str] | None]:
    """(host, login) after checking that nothing is exposed without a login."""
    login = parse_auth(login_value(auth, auth_file))
    if not is_loopback(host) and login is None:
        raise UserError(f"Listening on {host} lets other machines open the app, so it needs a login: "
                        f"set {AUTH_ENV}=USER:PASS (or use --auth-file FILE), or leave out --host to "
                        f"stay on {DEFAULT_HOST}.")
    if share and login is None:
        raise UserError(f"A share link makes the app reachable from the internet, so it needs a login: "
                        f"set {AUTH_ENV}=USER:PASS (or use --auth-file FILE).")
    return host, login


def run(args) -> int:
    import sys

    host, login = access_settings(args.host, args.auth, args.share, args.auth_file)
    if args.auth:
        print(f"warning: a password given with --auth is visible to every user of this machine (ps); "
              f"set {AUTH_ENV}=USER:PASS or use --auth-file FILE instead.", file=sys.stderr, flush=True)
    if args.max_upload_mb <= 0:
        raise UserError("--max-upload-mb must be a positive number of megabytes.")
    # Before gradio is imported: no analytics, and Gradio's own copies of uploads and downloads
    # stay inside the localsft home folder too.
    from localsft import paths

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_TEMP_DIR", str(paths.home() / "cache" / "gradio"))
    from localsft_ui.app import launch

    demo = launch(host=host, port=args.port, auth=login, share=args.share,
                  allowed_hosts=tuple(args.allowed_host), max_upload_mb=args.max_upload_mb)
    print(f"localsft studio: {demo.local_url}" + (f" and {demo.share_url}" if demo.share_url else "")
          + (" (login required)" if login else "") + "; Ctrl-C to stop.", flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close()
    return 0


def register(parser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--auth", metavar="USER:PASS",
                        help=f"require this login (visible in ps: prefer {AUTH_ENV} or --auth-file)")
    parser.add_argument("--auth-file", metavar="FILE",
                        help="require the login written as USER:PASS on the first line of FILE "
                             "(needed with --host or --share unless " + AUTH_ENV + " is set)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="also answer requests for this host name (e.g. behind a proxy; '*': any); "
                             "by default only loopback names and --host are answered")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help=f"largest file the app accepts as an upload (default {DEFAULT_MAX_UPLOAD_MB})")
    parser.add_argument("--share", action="store_true",
                        help="also make a temporary public gradio.live link (needs --auth)")
    parser.set_defaults(func=run)
