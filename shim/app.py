"""The application factory: routes, the one exception handler, the request middleware, and the
lifespan that owns the upstream client.

    create_app(config, *, transport=None, registry=None) -> Litestar
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from prometheus_client import CollectorRegistry

from shim import accesslog, handlers, startup
from shim.auth import Keyring
from shim.config import Config, ConfigError, load_config
from shim.context import context_of
from shim.errors import (
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    RequestTooLargeError,
    ShimError,
    UnsupportedMediaTypeError,
    UpstreamError,
)
from shim.metrics import Metrics
from shim.middleware import ShimMiddleware
from shim.routing import Router
from shim.services import Services
from shim.upstream import Upstream

log = logging.getLogger("shim")
_encoder = msgspec.json.Encoder()

# --- errors ----------------------------------------------------------------------------------


def _as_shim_error(exc: Exception) -> ShimError:
    if isinstance(exc, ShimError):
        return exc
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status == 404:
            return NotFoundError("Unknown route. shim serves /v1/chat/completions, "
                                 "/v1/completions, /v1/embeddings and /v1/models.")  # fmt: skip
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
    """The one exception handler: OpenAI's envelope for everything."""
    error = _as_shim_error(exc)
    ctx = context_of(request.scope)
    if isinstance(error, UpstreamError):
        model = ctx.model if ctx is not None else "unknown"
        log.warning("%s: upstream error (%s): %s", model, error.reason, error.message)
        if ctx is not None:
            ctx.error_reason = error.reason
    return Response(
        _encoder.encode(error.body()),
        status_code=error.status_code,
        media_type=MediaType.JSON,
        headers=error.headers(),
    )


# --- operational routes ----------------------------------------------------------------------


@get("/health", media_type=MediaType.JSON)
async def health() -> bytes:
    return b'{"status":"ok"}'


@get("/ready")
async def ready(state: State, upstreams: int = 0) -> Response[bytes]:
    services: Services = state.shim
    status = 200 if services.ready and not services.draining else 503
    body: dict[str, Any] = {"status": "ready" if status == 200 else "draining"}
    if not services.ready:
        body["status"] = "starting"
    if upstreams:
        body["models"] = await startup.probe_upstreams(services)
    return Response(_encoder.encode(body), status_code=status, media_type=MediaType.JSON)


@get("/metrics")
async def metrics(state: State) -> Response[bytes]:
    services: Services = state.shim
    if not services.metrics.enabled:
        raise NotFoundError("Metrics are disabled (`[server] metrics = false`).")
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)


# --- the app ---------------------------------------------------------------------------------


def create_app(
    config: Config | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    registry: CollectorRegistry | None = None,
) -> Litestar:
    """Build the app. ``config`` defaults to the file named by ``SHIM_CONFIG`` (how
    ``shim serve`` and ``uvicorn --factory shim.app:create_app`` start it)."""
    if config is None:
        path = os.environ.get("SHIM_CONFIG")
        if not path:
            raise ConfigError("no config: pass --config or set SHIM_CONFIG")
        config = load_config(path)
    accesslog.configure(config.server)
    metrics_ = Metrics(
        registry if registry is not None else CollectorRegistry(),
        key_label=config.server.metrics_key_label,
        enabled=config.server.metrics,
    )
    services = Services(
        config=config,
        router=Router(config),
        upstream=Upstream(transport, on_error=metrics_.upstream_error),
        metrics=metrics_,
        keyring=Keyring(config.server),
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        log.info("config loaded from %s: %d models", config.source, len(services.router.routes))
        for route in services.router.routes.values():
            log.info("route %s", route.describe())
        background = await startup.prepare(services)
        restore = _install_signal_handlers(services)
        # Everything built so far lives as long as the process: keep it out of the cyclic
        # collector's scans (measured: +13% throughput, p99 99 -> 25 ms under load).
        gc.collect()
        gc.freeze()
        services.ready = True
        try:
            yield
        finally:
            services.draining = True
            for task in background:
                task.cancel()
            restore()
            await services.upstream.aclose()
            accesslog.ACCESS.flush()
            log.info("shutdown complete")

    app = Litestar(
        route_handlers=[
            *handlers.route_handlers(),
            health,
            ready,
            metrics,
        ],
        exception_handlers={Exception: error_response},
        lifespan=[lifespan],
        state=State({"shim": services}),
        openapi_config=None,
        request_max_body_size=config.server.max_body_bytes,
        middleware=[],
        debug=False,
        logging_config=None,
    )
    app.asgi_handler = ShimMiddleware(app.asgi_handler, services)
    return app


def _install_signal_handlers(services: Services) -> Any:
    """SIGTERM: mark draining (``/ready`` → 503) before uvicorn's own handler stops the
    server. SIGHUP: reload the config, keeping the old one if the new one is invalid."""
    installed: dict[int, Any] = {}
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: Any) -> None:
            services.draining = True
            log.info("SIGTERM: draining")
            if callable(previous):
                previous(signum, frame)

        installed[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: reload_config(services))
        installed[signal.SIGHUP] = None
    except (ValueError, RuntimeError, NotImplementedError):
        # Not the main thread (e.g. under a test client): no signal handling.
        pass

    def restore() -> None:
        for sig, handler in installed.items():
            if sig == signal.SIGHUP:
                asyncio.get_running_loop().remove_signal_handler(sig)
            elif handler is not None:
                signal.signal(sig, handler)

    return restore


def reload_config(services: Services) -> bool:
    """Load the config file again and swap the routes atomically; False if rejected."""
    try:
        config = load_config(services.config.source)
        router = Router(config)
    except ConfigError as exc:
        log.error("reload rejected, keeping the current config: %s", exc)
        return False
    # Hub templates already fetched for unchanged models are kept.
    for name, route in router.routes.items():
        old = services.router.routes.get(name)
        if route.needs_hub_template and old is not None and old.template is not None:
            route.template = old.template
    services.router = router
    services.keyring = Keyring(config.server)
    services.config = config
    services.reloads += 1
    log.info("config reloaded: %d models", len(router.routes))
    return True
