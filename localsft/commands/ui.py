"""`localsft ui`: start the studio (a Gradio app in the browser).

Private by default: it listens on 127.0.0.1 only. Listening on any other address needs a
login (`--auth USER:PASS` or LOCALSFT_AUTH), and a public share link is made only with
`--share`. Gradio is imported inside `run`, so the library never imports it.
"""

from __future__ import annotations

import ipaddress
import os

from localsft.errors import UserError

AUTH_ENV = "LOCALSFT_AUTH"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


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
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise UserError("--auth (or LOCALSFT_AUTH) must look like USER:PASS, with both parts non-empty.")
    return user, password


def access_settings(host: str, auth: str | None, share: bool) -> tuple[str, tuple[str, str] | None]:
    """(host, login) after checking that nothing is exposed without a login."""
    login = parse_auth(auth or os.environ.get(AUTH_ENV))
    if not is_loopback(host) and login is None:
        raise UserError(f"Listening on {host} lets other machines open the app, so it needs a login: "
                        f"add --auth USER:PASS (or set {AUTH_ENV}=USER:PASS), or leave out --host to "
                        f"stay on {DEFAULT_HOST}.")
    if share and login is None:
        raise UserError(f"A share link makes the app reachable from the internet, so it needs a login: "
                        f"add --auth USER:PASS (or set {AUTH_ENV}=USER:PASS).")
    return host, login


def run(args) -> int:
    host, login = access_settings(args.host, args.auth, args.share)
    # Before gradio is imported: no analytics, and Gradio's own copies of uploads and downloads
    # stay inside the localsft home folder too.
    from localsft import paths

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_TEMP_DIR", str(paths.home() / "cache" / "gradio"))
    from localsft_ui.app import launch

    demo = launch(host=host, port=args.port, auth=login, share=args.share)
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
                        help=f"require this login (needed with --host or --share; or set {AUTH_ENV})")
    parser.add_argument("--share", action="store_true",
                        help="also make a temporary public gradio.live link (needs --auth)")
    parser.set_defaults(func=run)
