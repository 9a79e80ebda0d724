"""ASGI glue for the API routes on the hot path (``POST /v1/...``).

These are litestar ``asgi`` route handlers: litestar still routes, runs the app's exception
handler (every error still leaves as OpenAI's envelope) and the lifespan, but the per-request
machinery of a regular handler (signature model, kwargs, response objects) is skipped; it was a
measured ~15% of a request's CPU. A handler gets a ``Call`` and returns a ``Reply``: JSON bytes,
or an async iterator of SSE chunks streamed with litestar's disconnect-aware streaming.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive

from shim import accesslog
from shim.context import SCOPE_KEY, RequestContext
from shim.errors import (
    MethodNotAllowedError,
    RequestTooLargeError,
    ShimError,
    UnsupportedMediaTypeError,
)
from shim.services import Services
from shim.streaming import STREAM_HEADERS

T = TypeVar("T")
#: JSON bytes (200), or the chunks of an SSE stream.
Reply = bytes | AsyncIterator[bytes]
_JSON_TYPES = (b"application/json", b"text/plain")
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(slots=True)
class Call:
    """One API request, as a handler sees it."""

    services: Services
    ctx: RequestContext
    body: bytes
    receive: Receive

    async def until_disconnect(self, work: Awaitable[T]) -> T:
        """Await ``work``, cancelling it (and so the upstream call) if the client goes away.

        One watcher task listens for ``http.disconnect`` (once the body is read, ``receive()``
        returns nothing else) and cancels this task.
        """
        task = asyncio.current_task()
        assert task is not None
        receive = self.receive
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            task.cancel()

        watcher = asyncio.create_task(watch())
        try:
            return await work
        except asyncio.CancelledError:
            if gone:
                task.uncancel()
                raise ClientDisconnectedError("The client closed the connection.") from None
            raise
        finally:
            watcher.cancel()


class ClientDisconnectedError(ShimError):
    status_code = 499
    type = "client_closed_request"


def _check_content_type(scope: Any) -> None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            if media not in _JSON_TYPES and not media.endswith(b"+json"):
                raise UnsupportedMediaTypeError(
                    f"Content-Type `{value.decode('latin-1')}` is not supported; "
                    "send application/json."
                )
            return


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError("The client closed the connection.")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def api_route(path: str, handler: Callable[[Call], Awaitable[Reply]]) -> ASGIRouteHandler:
    """A ``POST`` API route served by ``handler``."""

    # Plain ASGI below: litestar's Scope/Send are unions of HTTP and WebSocket types.
    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        if scope["method"] != "POST":
            raise MethodNotAllowedError(f"Use POST for {path}.")
        _check_content_type(scope)
        services: Services = scope["app"].state.shim
        ctx: RequestContext = scope["state"][SCOPE_KEY]
        body = await _read_body(receive, services.config.server.max_body_bytes)
        if accesslog.bodies_enabled():
            ctx.body = body
        reply = await handler(Call(services, ctx, body, receive))
        if isinstance(reply, bytes):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(reply)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": reply})
            return
        stream = ASGIStreamingResponse(
            iterator=reply, media_type="text/event-stream", headers=dict(STREAM_HEADERS)
        )
        await stream(scope, receive, send)

    endpoint.__name__ = handler.__name__
    route: ASGIRouteHandler = asgi(path, is_mount=False, copy_scope=False)(endpoint)
    return route
