"""Serve every base model and finished run through an OpenAI-compatible API.

    engine = Engine().start()
    app = create_app(api_key=None, engine=engine)   # a FastAPI app with the API under /v1
    serve("127.0.0.1", 8000)                        # what `localsft serve` runs (uvicorn)

`engine.py` decodes requests for different runs of one base as one batch (one copy of the
weights, each row with its own adapter); `api.py` holds the routes; `requests.py` checks
request bodies. The studio mounts the same /v1 app on its own server (`mount_api`).
"""

from __future__ import annotations

from localsft.errors import UserError


def is_loopback_host(host: str) -> bool:
    """Whether binding `host` keeps the server on this computer."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, api_key: str | None) -> None:
    """A UserError when `host` would expose the API to other machines without an API key."""
    if not is_loopback_host(host) and not api_key:
        raise UserError(f"Serving on {host} makes the models reachable from other machines: "
                        "add --api-key KEY (clients then send 'Authorization: Bearer KEY').")


def create_app(api_key: str | None = None, engine=None):
    """A FastAPI app serving the API under /v1 (its engine started if not given)."""
    from fastapi import FastAPI

    from localsft.serve.api import create_api
    from localsft.serve.engine import Engine

    engine = engine or Engine().start()
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.mount("/v1", create_api(engine, api_key))
    app.state.engine = engine
    return app


def mount_api(app, api_key: str | None = None) -> None:
    """Add the /v1 API to an existing FastAPI app (the studio's), with an engine of its own."""
    from localsft.serve.api import create_api
    from localsft.serve.engine import Engine

    app.mount("/v1", create_api(Engine().start(), api_key))


def serve(host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None) -> None:
    """Run the API server until interrupted. Beyond loopback an API key is required."""
    import uvicorn

    from localsft.platform.blas import DECODE_THREADS  # $OPENBLAS_NUM_THREADS, when set, wins
    from localsft.serve.engine import Engine

    check_host(host, api_key)
    app = create_app(api_key, Engine(blas_threads=DECODE_THREADS).start())
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        app.state.engine.close()
