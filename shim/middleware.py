"""The outermost ASGI middleware: per request, the identity (canonical path, method, client
key), the id and overhead headers, CORS, the request metrics and the access log line.

Plain ASGI, so it sees every response (framework errors included) and never buffers a body or
hides ``http.disconnect`` from the handlers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from urllib.parse import quote

from shim import accesslog
from shim.context import SCOPE_KEY, RequestContext, new_id
from shim.errors import ShimError
from shim.serve.replies import send_error
from shim.services import Services
from shim.state.rate import RateWindow
from shim.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("shim")

#: The API operation by path (the metrics' `endpoint` label); other paths are not counted as
#: API requests.
APIS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/rerank": "rerank",
    # Cohere v2's and Jina's paths for the same route: one label.
    "/v2/rerank": "rerank",
    "/rerank": "rerank",
    "/v1/models": "models",
    "/v1/responses": "responses",
}
#: Paths under which every path is one API operation (`/v1/models/{id}`, `/v1/responses/{id}`).
_API_PREFIXES = (("/v1/models/", "models"), ("/v1/responses/", "responses"))
#: API routes outside /v1/: their requests count against a key's rate limit as /v1/'s do.
_UNVERSIONED_API = frozenset({"/v2/rerank", "/rerank"})


#: Paths served without a client key (``/ready`` only without a query: ``?upstreams=1`` calls
#: the upstreams). Every other path needs one when keys are configured, so a route added later,
#: or a spelling of a path nobody thought of, can never be open by accident.
PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics"})

# What ``quote`` may leave as is in a path segment (RFC 3986 ``pchar``), besides ``/``.
_PATH_SAFE = "/:@!$&'()*+,;=~"


def canonical_path(path: str) -> str:
    """The one spelling of a decoded path: repeated slashes collapsed, ``.`` and ``..``
    segments resolved (never above the root), no trailing slash."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    return "/" + "/".join(segments)


def _canonicalise(scope: Scope) -> str:
    """Write the canonical path back into the scope (``path`` and ``raw_path``), so the router,
    authentication, the metrics and the access log all see the same path."""
    path: str = scope["path"]
    raw: bytes = scope.get("raw_path") or b""
    # Fast path: most requests are already canonical. uvicorn's raw path is longer than the
    # decoded one exactly when it holds percent-escapes (then both are rewritten).
    if (
        not path
        or path[0] != "/"
        or (path[-1] == "/" and path != "/")
        or "//" in path
        or "/." in path
        or len(raw) != len(path)
    ):
        path = canonical_path(path)
        scope["path"] = path
        scope["raw_path"] = quote(path, safe=_PATH_SAFE).encode("ascii")
    return path


def _api_under(path: str) -> str | None:
    for prefix, api in _API_PREFIXES:
        if path.startswith(prefix):
            return api
    return None


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return text
            break
    return new_id(32)


def _header(scope: Scope, wanted: bytes) -> bytes | None:
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
        server = services.active.config.server
        self.cors = frozenset(server.cors_origins)
        self.cors_any = "*" in self.cors
        self.metrics_auth = server.metrics_auth

    def _public(self, path: str, scope: Scope) -> bool:
        if path not in PUBLIC_PATHS:
            return False
        if path == "/metrics":
            return not self.metrics_auth
        return path != "/ready" or not scope.get("query_string")

    def _allowed_origin(self, scope: Scope) -> bytes | None:
        if not self.cors:
            return None
        origin = _header(scope, b"origin")
        if origin is None:
            return None
        if self.cors_any:
            return b"*"
        return origin if origin.decode("latin-1") in self.cors else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = self.services
        path = _canonicalise(scope)
        method: str = scope["method"]
        api = APIS.get(path) or _api_under(path)
        ctx = RequestContext(_request_id(scope), api or "other")
        scope.setdefault("state", {})[SCOPE_KEY] = ctx
        origin = self._allowed_origin(scope)
        if origin is not None and method == "OPTIONS":
            await _preflight(send, origin, ctx, _header(scope, b"access-control-request-headers"))
            return
        head = method == "HEAD"

        async def send_wrapper(message: Message) -> None:
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
            elif head and message.get("body"):
                # A HEAD answer is the GET answer without its body (headers unchanged).
                message = {**message, "body": b""}
            await send(message)

        windows: RateWindow | None = None
        try:
            if not self._public(path, scope):
                active = services.active
                try:
                    key = active.keyring.authenticate(_header(scope, b"authorization"))
                    if key is not None:
                        ctx.key, ctx.key_name = key, key.name
                        windows = active.windows.get(key.name)
                        api_call = path[:4] == "/v1/" or path in _UNVERSIONED_API
                        if windows is not None and method == "POST" and api_call:
                            await windows.admit()
                except ShimError as exc:
                    await send_error(send_wrapper, active.scrubber, exc)
                    return
            # HEAD is served as GET wherever GET is (the server, the scope's owner, still sees
            # HEAD and sends no body); the access log says HEAD.
            app_scope: Scope = {**scope, "method": "GET"} if head else scope
            await self.app(app_scope, receive, send_wrapper)
        except asyncio.CancelledError:
            ctx.status = 499
            raise
        finally:
            now = time.perf_counter()
            if api is not None:
                services.metrics.finish(ctx, now)
                if windows is not None:
                    await _spend(windows, ctx.prompt_tokens + ctx.completion_tokens)
            accesslog.write(ctx, scope, now)


async def _spend(windows: RateWindow, tokens: int) -> None:
    """Count a finished request's tokens; the answer is out, so a shared window that cannot
    be reached (Redis down) is only logged."""
    try:
        await windows.spend(tokens)
    except ShimError as exc:
        log.warning("tokens not counted against the key's tpm: %s", exc.message)


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
    send: Send, origin: bytes, ctx: RequestContext, requested: bytes | None
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
