"""ASGI glue for the API routes on the hot path (``POST /v1/...``).

These are litestar ``asgi`` route handlers: litestar still routes, runs the app's exception
handler (every error still leaves as OpenAI's envelope) and the lifespan, but the per-request
machinery of a regular handler (signature model, kwargs, response objects) is skipped; it was a
measured ~15% of a request's CPU. A handler gets a ``Call`` and returns a ``Reply``: JSON bytes,
or an async iterator of SSE chunks, written here.

One watcher task per request listens for ``http.disconnect`` (once the body is read,
``receive()`` returns nothing else) and cancels the request's task: the upstream call or
stream in progress is cancelled and closed at once, whatever phase the request is in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive

from shim import accesslog
from shim.context import SCOPE_KEY, RequestContext
from shim.errors import (
    MethodNotAllowedError,
    RequestTooLargeError,
    ShimError,
    UnsupportedMediaTypeError,
)
from shim.routing import Slot
from shim.services import Services
from shim.streaming import STREAM_HEADERS

#: JSON bytes (200), or the chunks of an SSE stream.
Reply = bytes | AsyncGenerator[bytes, None]
_JSON_TYPES = (b"application/json", b"text/plain")
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    *((k.encode(), v.encode()) for k, v in STREAM_HEADERS.items()),
]
_SSE_START = {"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS}
_SSE_END = {"type": "http.response.body", "body": b"", "more_body": False}


@dataclass(slots=True)
class Call:
    """One API request, as a handler sees it."""

    services: Services
    ctx: RequestContext
    body: bytes
    receive: Receive
    # The concurrency slot a streamed reply holds until it ends (released here, once).
    slot: Slot | None = None


class ClientDisconnectedError(ShimError):
    status_code = 499
    type = "client_closed_request"


class _DisconnectWatch:
    """Cancels ``task`` when the client disconnects."""

    __slots__ = ("_watcher", "gone", "task")

    def __init__(self, receive: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.gone = False
        self._watcher = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.task.cancel()

    def stop(self) -> None:
        self._watcher.cancel()


async def _send_stream(send: Any, chunks: AsyncIterator[bytes]) -> None:
    await send(_SSE_START)
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send(_SSE_END)


def _check_headers(scope: Any, limit: int) -> None:
    """Content-Type, and a declared Content-Length over ``limit``: both answered before the
    body is read, so a client that sent ``Expect: 100-continue`` is never asked for it (uvicorn
    sends ``100 Continue`` on the first ``receive()``)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            if media not in _JSON_TYPES and not media.endswith(b"+json"):
                raise UnsupportedMediaTypeError(
                    f"Content-Type `{value.decode('latin-1')}` is not supported; "
                    "send application/json."
                )
        elif name == b"content-length" and value.isdigit() and int(value) > limit:
            raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")


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
            raise MethodNotAllowedError(f"Use POST for {path}.", allow="POST")
        services: Services = scope["app"].state.shim
        ctx: RequestContext = scope["state"][SCOPE_KEY]
        limit = services.config.server.max_body_bytes
        _check_headers(scope, limit)
        body = await _read_body(receive, limit)
        if accesslog.ACCESS.bodies:
            ctx.body = body
        watch = _DisconnectWatch(receive)
        call = Call(services, ctx, body, receive)
        reply: Reply | None = None
        try:
            reply = await handler(call)
            if isinstance(reply, bytes):
                start = {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(reply)).encode())],
                }
                await send(start)
                await send({"type": "http.response.body", "body": reply})
            else:
                await _send_stream(send, reply)
        except asyncio.CancelledError:
            if not watch.gone:
                raise
            watch.task.uncancel()
            if reply is None:  # nothing answered yet: counted and logged as a 499
                raise ClientDisconnectedError("The client closed the connection.") from None
            ctx.status = 499
        finally:
            watch.stop()
            try:
                if reply is not None and not isinstance(reply, bytes):
                    # Closes the upstream stream if the client left mid-way.
                    await reply.aclose()
            finally:
                # After the last byte, an upstream failure or the client's disconnect.
                if call.slot is not None:
                    call.slot.release()

    endpoint.__name__ = handler.__name__
    route: ASGIRouteHandler = asgi(path, is_mount=False, copy_scope=False)(endpoint)
    return route
