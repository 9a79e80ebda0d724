"""The application factory: routes, the one exception handler, the request middleware, and the
lifespan that owns the upstream client.

    create_app(config, *, transport=None, registry=None) -> Litestar
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, Send
from prometheus_client import CollectorRegistry

from shim import accesslog, handlers, startup
from shim.auth import Keyring
from shim.config import Config, ConfigError, load_config
from shim.context import SCOPE_KEY, RequestContext, context_of, new_id
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
from shim.routing import Router
from shim.services import Services
from shim.upstream import Upstream

log = logging.getLogger("shim")
_encoder = msgspec.json.Encoder()

#: Metric `endpoint` label by path; other paths are not counted as API requests.
ENDPOINTS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/models": "models",
}


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
            return MethodNotAllowedError("Method not allowed on this route.")
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


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """The one exception handler: OpenAI's envelope for everything."""
    error = _as_shim_error(exc)
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, round(error.retry_after)))
    ctx = context_of(request.scope)
    if isinstance(error, UpstreamError):
        model = ctx.model if ctx is not None else "unknown"
        log.warning("%s: upstream error (%s): %s", model, error.reason, error.message)
        if ctx is not None:
            ctx.error_reason = error.reason
        if error.status_code in (502, 504) and (error.exhausted or not error.retryable):
            # shim already retried what can be retried: clients should not multiply it.
            headers["x-should-retry"] = "false"
    return Response(
        _encoder.encode(error.body()),
        status_code=error.status_code,
        media_type=MediaType.JSON,
        headers=headers,
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


# --- middleware ------------------------------------------------------------------------------


def _request_id(scope: Any) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return text
            break
    return new_id(32)


def _header(scope: Any, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None


class ShimMiddleware:
    """Per request: id and overhead headers, client keys, CORS, metrics and the access log.

    Plain ASGI and outermost, so it sees every response (framework errors included) and never
    buffers a body or hides ``http.disconnect`` from the handlers.
    """

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        server = services.config.server
        self.cors = frozenset(server.cors_origins)
        self.cors_any = "*" in self.cors
        self.metrics_auth = server.metrics_auth

    def _allowed_origin(self, scope: Any) -> bytes | None:
        if not self.cors:
            return None
        origin = _header(scope, b"origin")
        if origin is None:
            return None
        if self.cors_any:
            return b"*"
        return origin if origin.decode("latin-1") in self.cors else None

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = self.services
        path: str = scope["path"]
        endpoint = ENDPOINTS.get(path) or ("models" if path.startswith("/v1/models/") else None)
        ctx = RequestContext(_request_id(scope), endpoint or "other")
        scope.setdefault("state", {})[SCOPE_KEY] = ctx
        origin = self._allowed_origin(scope)
        if origin is not None and scope["method"] == "OPTIONS":
            await _preflight(send, origin, ctx, _header(scope, b"access-control-request-headers"))
            return

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                if not ctx.status:
                    ctx.status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", ctx.request_id.encode("latin-1")))
                headers.append((b"x-shim-overhead-ms", f"{ctx.overhead() * 1000:.3f}".encode()))
                if origin is not None:
                    headers.append((b"access-control-allow-origin", origin))
                    headers.append(
                        (b"access-control-expose-headers", b"x-request-id, x-shim-overhead-ms")
                    )
                    if origin != b"*":
                        headers.append((b"vary", b"Origin"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if path.startswith("/v1/") or (self.metrics_auth and path == "/metrics"):
                try:
                    key = services.keyring.authenticate(_header(scope, b"authorization"))
                    if key is not None:
                        ctx.key, ctx.key_name = key, key.name
                        if path.startswith("/v1/") and scope["method"] == "POST":
                            key.admit()
                except ShimError as exc:
                    await _send_error(send_wrapper, exc)
                    return
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            ctx.status = 499
            raise
        finally:
            now = time.perf_counter()
            if endpoint is not None:
                services.metrics.finish(ctx, now, routed=ctx.routed)
                if ctx.key is not None:
                    ctx.key.spend(ctx.prompt_tokens + ctx.completion_tokens)
            accesslog.write(ctx, scope, now)


async def _send_error(send: Any, exc: ShimError) -> None:
    body = _encoder.encode(exc.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
    if exc.status_code == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# What browser clients (the openai JS SDK included) send along with a request.
_ALLOWED_HEADERS = ", ".join(
    [
        "authorization", "content-type", "x-request-id", "openai-organization", "openai-project",
        "x-stainless-arch", "x-stainless-lang", "x-stainless-os", "x-stainless-package-version",
        "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-retry-count",
        "x-stainless-timeout",
    ]
).encode()  # fmt: skip


# A plain list of header names, as browsers send in Access-Control-Request-Headers.
_HEADER_NAMES = re.compile(rb"[A-Za-z0-9_\-]+(?:[ \t]*,[ \t]*[A-Za-z0-9_\-]+)*")


async def _preflight(
    send: Any, origin: bytes, ctx: RequestContext, requested: bytes | None
) -> None:
    ctx.status = 204
    allowed = _ALLOWED_HEADERS
    # Also allow what this preflight asks for: SDKs add headers of their own over time (the
    # openai JS SDK's `.stream()` sends X-Stainless-Helper-Method), and the origin allow-list,
    # not the header list, is what guards a bearer-key API.
    if requested and len(requested) <= 1024 and _HEADER_NAMES.fullmatch(requested):
        allowed += b", " + requested.lower()
    headers = [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
        (b"access-control-allow-headers", allowed),
        (b"access-control-max-age", b"600"),
        (b"vary", b"Origin, Access-Control-Request-Headers"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


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
        await startup.prepare(services)
        restore = _install_signal_handlers(services)
        services.ready = True
        try:
            yield
        finally:
            services.draining = True
            restore()
            await services.upstream.aclose()
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
