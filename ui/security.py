"""The studio's front door: which hosts, origins, routes and login attempts the server answers.

Gradio's app answers far more than the studio uses (run history that calls the Hub with the
owner's HF_TOKEN, monitoring, code editing, proxies), on any Host header. `Gate` sits in front
of all of it (outermost, before Gradio's own CORS layer) and:
- answers only Host names this server is meant to be reached by (DNS rebinding), and refuses
  requests whose Origin is another site;
- answers only the routes the studio uses (`route_rule`); every other route is a 404;
- with a login, lets nothing but the login page and static assets through without it;
- slows down password guessing: after a few failed logins a client waits, doubling each time.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gradio.routes import App, ORJSONResponse

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})

# The routes the studio's page (and gradio_client) use; anything else is gone. Paths as Starlette
# matches them (decoded, no query string).
PUBLIC_ROUTES = re.compile(r"/|/login/?|/(assets|static|svelte)/.+|/favicon\.ico|/robots\.txt|/manifest\.json"
                           r"|/pwa_icon(/\d+)?|(/gradio_api)?/theme\.css"
                           r"|/gradio_api/startup-events")  # launch() calls it itself, without a login
LOGIN_ROUTES = re.compile(r"/config/?|/logout/?|/gradio_api/(info/?|queue/join|queue/data|upload|upload_progress"
                          r"|heartbeat/[\w-]+|cancel|reset/?|app_id/?|user/?|login_check/?"
                          r"|file=(?!\w+:).+)")
# localsft's own routes mounted on the same app (they apply their own key rule).
OWN_PREFIXES = ("/v1/",)


def route_rule(path: str) -> str:
    """"public" (no login needed), "login" (needs the login when there is one), "own" or "gone"."""
    if PUBLIC_ROUTES.fullmatch(path):
        return "public"
    if LOGIN_ROUTES.fullmatch(path):
        return "login"
    if path.startswith(OWN_PREFIXES):
        return "own"
    return "gone"


def host_name(value: str | None) -> str | None:
    """The host of a Host header or Origin URL, lower case, without port or brackets."""
    if not value:
        return None
    try:
        return urlsplit(value if "//" in value else "//" + value).hostname
    except ValueError:
        return None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


@dataclass
class HostRule:
    """The Host names the server answers: loopback, the listening host, and any named extra ones.

    Bound to every address (0.0.0.0), any IP literal is fine too: DNS rebinding needs a name.
    `extra` holds "*" to accept every name (behind a proxy that checks them itself).
    """

    listen: str = "127.0.0.1"
    extra: set[str] = field(default_factory=set)

    def allows(self, name: str | None) -> bool:
        if name is None:
            return False
        if "*" in self.extra or name in LOOPBACK_NAMES or name in self.extra:
            return True
        if name == self.listen.strip("[]").lower():
            return True
        if _is_ip(name):
            return ipaddress.ip_address(name).is_loopback or self.listen.strip("[]") in WILDCARD_HOSTS
        return False


class LoginThrottle:
    """Per-client back-off after failed logins: `free` tries, then waits of 1 s, 2 s, 4 s ... up to `cap`."""

    def __init__(self, free: int = 3, first_wait: float = 1.0, cap: float = 300.0, clients: int = 10_000):
        self.free, self.first_wait, self.cap, self.clients = free, first_wait, cap, clients
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # client -> (count, until)

    def wait(self, client: str) -> float:
        """Seconds this client must wait before its next try (0: go ahead)."""
        _, until = self._failures.get(client, (0, 0.0))
        return max(0.0, until - time.monotonic())

    def failed(self, client: str) -> None:
        count = self._failures.pop(client, (0, 0.0))[0] + 1
        over = count - self.free  # 0 once the free tries are used up
        until = time.monotonic() + min(self.cap, self.first_wait * 2 ** over) if over >= 0 else 0.0
        self._failures[client] = (count, until)
        while len(self._failures) > self.clients:  # bounded memory under a flood of addresses
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


async def _respond(scope, send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"detail": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class Gate:
    """ASGI middleware in front of the whole Gradio app (see the module docstring)."""

    def __init__(self, app, gradio: "GuardedApp"):
        self.app, self.gradio = app, gradio

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        rule = self.gradio.hosts
        host = host_name(_header(scope, b"host"))
        if not rule.allows(host):
            return await _respond(scope, send, 421, f"This server does not answer to the host name {host!r}; "
                                  f"if that is this machine, start it with `localsft ui --allowed-host {host}`.")
        origin = _header(scope, b"origin")
        if origin is not None and not rule.allows(host_name(origin)):
            return await _respond(scope, send, 403, "Requests from other sites are refused.")
        path = scope["path"]
        kind = route_rule(path)
        if kind == "gone":
            return await _respond(scope, send, 404, "Not found")
        if kind == "login" and self.gradio.auth is not None and not self._logged_in(scope):
            return await _respond(scope, send, 401, "Not authenticated")
        if scope["type"] == "http" and scope["method"] == "POST" and path.rstrip("/") == "/login":
            return await self._login(scope, receive, send)
        return await self.app(scope, receive, send)

    def _logged_in(self, scope) -> bool:
        from starlette.requests import HTTPConnection

        cookies = HTTPConnection(scope).cookies
        cookie_id = self.gradio.cookie_id
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return token is not None and token in self.gradio.tokens

    async def _login(self, scope, receive, send):
        client = (scope.get("client") or ("?", 0))[0]
        throttle = self.gradio.throttle
        wait = throttle.wait(client)
        if wait > 0:
            return await _respond(scope, send, 429, f"Too many failed logins; try again in {wait:.0f} s.",
                                  {"Retry-After": str(max(1, round(wait + 0.5)))})

        async def watch(message):
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 200:
                    throttle.succeeded(client)
                elif status in (400, 401, 403):
                    throttle.failed(client)
            await send(message)

        await self.app(scope, receive, watch)


class GuardedApp(App):
    """Gradio's app with `Gate` as its outermost layer (passed to `Blocks.launch(_app=...)`)."""

    def __init__(self, hosts: HostRule, throttle: LoginThrottle | None = None):
        super().__init__(default_response_class=ORJSONResponse)
        self.hosts = hosts
        self.throttle = throttle or LoginThrottle()

    def build_middleware_stack(self):
        return Gate(super().build_middleware_stack(), self)
