"""The OpenAI-compatible routes, as a FastAPI app meant to be mounted at /v1.

    GET  /models              every base model in the store and every finished run
    POST /chat/completions    messages -> answer (stream: server-sent events)
    POST /completions         prompt -> continuation (stream: server-sent events)

Every request is checked before it reaches the engine; every failure is a JSON error in
OpenAI's shape with a plain message (never a traceback), and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from localsft.errors import UserError
from localsft.serve import requests as checks
from localsft.serve.engine import Engine, Job
from localsft.serve.requests import ApiError

log = logging.getLogger("localsft.serve")


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Targets:
    """Model ids -> targets, re-listed when an id is unknown (runs finished since appear)."""

    def __init__(self) -> None:
        self.known: dict = {}

    def all(self) -> list:
        from localsft.inference.targets import list_targets

        targets = list_targets()
        self.known = {t.id: t for t in targets}
        return targets

    def get(self, model: str):
        if model not in self.known:
            self.all()
        if model not in self.known:
            raise ApiError(404, f"The model {model!r} does not exist here; GET /v1/models lists the base models "
                                "and finished runs.", "model", "model_not_found")
        return self.known[model]


def create_api(engine: Engine, api_key: str | None = None) -> FastAPI:
    """The /v1 app. Without an API key it answers loopback clients only; with one, every
    request must send `Authorization: Bearer <key>`."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    targets = Targets()

    @app.middleware("http")
    async def authorize(request: Request, call_next):
        if api_key is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, f"Bearer {api_key}".encode()):
                return _error(ApiError(401, "Missing or wrong API key: send the header 'Authorization: Bearer KEY'.",
                                       code="invalid_api_key"))
        elif not _loopback(request.client.host if request.client else None):
            return _error(ApiError(401, "This server answers only this computer; start it with an API key to "
                                        "allow other machines.", code="invalid_api_key"))
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return _error(err)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        message = "No such endpoint." if err.status_code == 404 else str(err.detail)
        return _error(ApiError(err.status_code, message, code=None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception):
        log.exception("request failed")
        return _error(ApiError(500, f"The server failed to answer ({type(err).__name__}).", kind="server_error"))

    @app.get("/models")
    async def models():
        found = await asyncio.to_thread(targets.all)
        return {"object": "list", "data": [{"id": t.id, "object": "model", "created": _created(t),
                                            "owned_by": "localsft"} for t in found]}

    async def complete(request: Request, kind: str):
        body = await _body(request)
        target = await asyncio.to_thread(targets.get, checks.model_name(body))
        settings, given, stop, stream = checks.sampling(body)
        question = ({"messages": target.with_instructions(checks.messages(body))} if kind == "chat"
                    else {"prompt": checks.prompt(body)})
        job = Job(target, _noop, settings=settings, max_tokens_given=given, stop=stop, **question)
        return await _answer(engine, job, stream, kind)

    @app.post("/chat/completions")
    async def chat(request: Request):
        return await complete(request, "chat")

    @app.post("/completions")
    async def completions(request: Request):
        return await complete(request, "text")

    return app


def _noop(event: dict) -> None:
    pass


def _created(target) -> int:
    path = target.run.path if target.run else target.base
    try:
        return int(path.stat().st_mtime)
    except OSError:
        return 0


def _error(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


async def _body(request: Request) -> dict:
    raw = await request.body()
    try:
        body = json.loads(raw or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"The request body is not valid JSON ({err}).") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


async def _answer(engine: Engine, job: Job, stream: bool, kind: str):
    """Submit the job; answer as one JSON object, or as server-sent events when `stream`."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()

    def emit(event: dict) -> None:  # called on the engine thread
        try:
            loop.call_soon_threadsafe(events.put_nowait, event)
        except RuntimeError:  # the request's loop is gone
            job.cancelled = True

    job.emit = emit
    engine.submit(job)
    try:
        start = await events.get()
    except asyncio.CancelledError:
        job.cancelled = True
        raise
    if start["type"] == "error":
        raise ApiError(start["status"], start["message"], code=start.get("code"),
                       kind="server_error" if start["status"] >= 500 else "invalid_request_error")
    reply = _Reply(job, kind, start["prompt_tokens"])
    if stream:
        return StreamingResponse(reply.stream(events), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    try:
        return await reply.whole(events)
    finally:
        job.cancelled = True  # a no-op when done; stops the row if the client went away


class _Reply:
    """Builds the response objects (chat.completion / text_completion, and their chunks)."""

    def __init__(self, job: Job, kind: str, prompt_tokens: int) -> None:
        self.job, self.kind, self.prompt_tokens = job, kind, prompt_tokens
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    def _object(self, choice: dict, chunk: bool) -> dict:
        kind = ("chat.completion" if self.kind == "chat" else "text_completion") + (".chunk" if chunk and self.kind == "chat" else "")
        return {"id": self.id, "object": kind, "created": self.created, "model": self.job.target.id,
                "choices": [{"index": 0, "logprobs": None, **choice}]}

    def _usage(self, completion: int) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion}

    def _piece(self, text: str | None, finish: str | None, role: bool = False) -> dict:
        if self.kind == "text":
            return {"text": text or "", "finish_reason": finish}
        delta = ({"role": "assistant"} if role else {}) | ({"content": text} if text is not None else {})
        return {"delta": delta, "finish_reason": finish}

    async def whole(self, events: asyncio.Queue) -> dict:
        text = ""
        while True:
            event = await events.get()
            if event["type"] == "text":
                text += event["text"]
            elif event["type"] == "error":
                raise ApiError(event["status"], event["message"], kind="server_error")
            else:
                choice = ({"message": {"role": "assistant", "content": text}} if self.kind == "chat"
                          else {"text": text})
                return {**self._object({**choice, "finish_reason": event["finish_reason"]}, False),
                        "usage": self._usage(event["completion_tokens"])}

    async def stream(self, events: asyncio.Queue):
        try:
            if self.kind == "chat":
                yield _sse(self._object(self._piece("", None, role=True), True))
            while True:
                event = await events.get()
                if event["type"] == "text":
                    yield _sse(self._object(self._piece(event["text"], None), True))
                elif event["type"] == "error":
                    yield _sse(ApiError(event["status"], event["message"], kind="server_error").body())
                    break
                else:
                    final = self._object(self._piece(None, event["finish_reason"]), True)
                    yield _sse({**final, "usage": self._usage(event["completion_tokens"])})
                    break
            yield "data: [DONE]\n\n"
        finally:
            self.job.cancelled = True  # the client left (or we are done): the row leaves the batch


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
