"""The application factory: routes, the one exception handler, the request middleware, and the
lifespan that owns the upstream client.

    create_app(config, *, transport=None, registry=None, clock=None) -> Litestar
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import httpx
from litestar import Litestar, MediaType, Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from prometheus_client import CollectorRegistry

from shim import accesslog, lifecycle, ops
from shim.clock import Clock, SystemClock
from shim.config import Config, ConfigError
from shim.discovery import Discovery
from shim.errors import (
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    RequestTooLargeError,
    ShimError,
    UnsupportedMediaTypeError,
)
from shim.live import LiveState
from shim.loader import load_config
from shim.metrics import Metrics
from shim.middleware import ShimMiddleware
from shim.serve import api
from shim.services import Services
from shim.state import open_state
from shim.types import ASGIApp
from shim.upstream.client import Client

log = logging.getLogger("shim")


def _as_shim_error(exc: Exception) -> ShimError:
    if isinstance(exc, ShimError):
        return exc
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status == 404:
            return NotFoundError("Unknown route. shim serves /v1/chat/completions, "
                                 "/v1/completions, /v1/responses, /v1/embeddings, "
                                 "/v1/rerank and /v1/models.")  # fmt: skip
        if status == 405:
            return MethodNotAllowedError(
                "Method not allowed on this route.", allow=_allow(exc.headers or {})
            )
        if status == 413:
            return RequestTooLargeError("The request body is too large.")
        if status == 415:
            return UnsupportedMediaTypeError("Unsupported Content-Type; send application/json.")
        if 400 <= status < 500:
            error = InvalidRequestError(str(exc.detail) or "Bad request.")
            error.status_code = status  # type: ignore[misc]
            return error
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return ShimError("The server had an error while processing your request.")


def _allow(headers: dict[str, str]) -> str:
    """The router's ``Allow`` list, with HEAD wherever GET is (the middleware serves it)."""
    allowed = next((v for k, v in headers.items() if k.lower() == "allow"), "")
    methods = [m.strip() for m in allowed.split(",") if m.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")
    return ", ".join(methods)


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """The one exception handler: OpenAI's envelope (its message scrubbed) for everything raised
    before a reply's owner took over, the framework's own errors included
    (``shim.serve.dispatch`` writes the errors of the replies it owns with the same envelope)."""
    error = _as_shim_error(exc)
    services: Services = request.app.state.shim
    return Response(
        services.active.scrubber.envelope(error),
        status_code=error.status_code,
        media_type=MediaType.JSON,
        headers=error.headers(),
    )


def create_app(
    config: Config | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    freeze_gc: bool = False,
) -> Litestar:
    """Build the app. ``config`` defaults to the file named by ``SHIM_CONFIG`` (how
    ``shim serve`` and ``uvicorn --factory shim.app:create_app`` start it). ``freeze_gc``
    (``shim serve`` sets it) moves the startup heap out of the cyclic collector's scans."""
    if config is None:
        path = os.environ.get("SHIM_CONFIG")
        if not path:
            raise ConfigError("no config: pass --config or set SHIM_CONFIG")
        config = load_config(path)
    accesslog.configure(config.server)
    clock = clock if clock is not None else SystemClock()
    metrics = Metrics(
        registry if registry is not None else CollectorRegistry(),
        key_label=config.server.metrics_key_label,
        enabled=config.server.metrics,
    )
    client = Client(transport, clock=clock, on_error=metrics.upstream_error)
    # Nothing is opened yet: SQLite and Redis connect on first use.
    stored = open_state(config.state, base_dir=Path(config.source).parent)
    # Redis windows are shared by every worker and replica; else this process counts its own.
    state = LiveState(clock, rates=stored.rates if config.state.backend == "redis" else None)
    services = Services(
        client=client,
        metrics=metrics,
        clock=clock,
        state=state,
        discovery=Discovery(client),
        stored=stored,
        active=state.activate(config),
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        router = services.active.router
        log.info("config loaded from %s: %d models", config.source, len(router.routes))
        for route in router.routes.values():
            log.info("route %s", route.describe())
        await services.discovery.learn(services.active)
        restore = lifecycle.install_signal_handlers(services)
        if freeze_gc:
            # Everything built so far lives as long as the process: keep it out of the cyclic
            # collector's scans (measured: +13% throughput, p99 99 -> 25 ms under load). Only
            # in a server process: a test process builds many apps and must collect them.
            gc.collect()
            gc.freeze()
            # Fewer, larger young collections: shim_overhead p99 at c=32 halved (~1.0 ->
            # ~0.5 ms, 3 interleaved runs; bench/profile.md) for ~4 MB more RSS.
            gc.set_threshold(10_000, 20, 20)
        services.ready = True
        try:
            yield
        finally:
            services.draining = True
            services.discovery.close()
            restore()
            await client.aclose()
            await stored.aclose()
            accesslog.ACCESS.flush()
            log.info("shutdown complete")

    app = Litestar(
        route_handlers=[*api.route_handlers(), *ops.route_handlers],
        exception_handlers={Exception: error_response},
        lifespan=[lifespan],
        state=State({"shim": services}),
        openapi_config=None,
        request_max_body_size=config.server.max_body_bytes,
        middleware=[],
        debug=False,
        logging_config=None,
    )
    # shim's ASGI code is typed with plain mappings (``shim.types``), litestar's with unions.
    handler = cast(ASGIApp, app.asgi_handler)
    app.asgi_handler = ShimMiddleware(handler, services)  # type: ignore[assignment]
    return app
