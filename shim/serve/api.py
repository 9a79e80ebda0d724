"""ASGI glue for the API routes on the hot path (``POST /v1/...``), and the table of them.

These are litestar ``asgi`` route handlers: litestar still routes, runs the app's exception
handler (every error still leaves as OpenAI's envelope) and the lifespan, but the per-request
machinery of a regular handler (signature model, kwargs, response objects) is skipped; it was a
measured ~15% of a request's CPU. Here: the method, the Content-Type and the body; then
``dispatch`` owns the reply.
"""

from __future__ import annotations

from typing import Any, TypeVar

from litestar import asgi
from litestar.handlers import ASGIRouteHandler

from shim import accesslog
from shim.context import SCOPE_KEY, RequestContext
from shim.errors import (
    ClientDisconnectedError,
    MethodNotAllowedError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
)
from shim.serve import chat, completions, dispatch, embeddings, models, rerank, responses, stored
from shim.serve.call import Call, Request, Service
from shim.services import Services
from shim.types import Receive, Scope, Send

R = TypeVar("R", bound=Request)
_JSON_TYPES = (b"application/json", b"text/plain")


def _check_headers(scope: Scope, limit: int) -> None:
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
        elif (
            name == b"content-length"
            and value.isdigit()
            and (
                len(value) > 18 or int(value) > limit  # (int() refuses 4,300+ digits)
            )
        ):
            raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")


async def _read_body(receive: Receive, limit: int) -> bytes:
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


def api_route(service: Service[R]) -> ASGIRouteHandler:
    """The ``POST`` route of ``service``."""
    path = service.path

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            raise MethodNotAllowedError(f"Use POST for {path}.", allow="POST")
        services: Services = scope["app"].state.shim
        active = services.active
        ctx: RequestContext = scope["state"][SCOPE_KEY]
        limit = active.config.server.max_body_bytes
        _check_headers(scope, limit)
        body = await _read_body(receive, limit)
        if accesslog.ACCESS.bodies:
            ctx.body = body
        await dispatch.serve(Call(services, active, ctx, body), service, receive, send)

    app.__name__ = path.strip("/").replace("/", "_")
    route: ASGIRouteHandler = asgi(path, is_mount=False, copy_scope=False)(app)
    return route


def route_handlers() -> list[Any]:
    """The API's route handlers, for the app."""
    return [
        api_route(chat.SERVICE),
        api_route(completions.SERVICE),
        api_route(responses.SERVICE),
        *stored.route_handlers,
        api_route(embeddings.SERVICE),
        *(api_route(service) for service in rerank.SERVICES),
        models.list_models,
        models.retrieve_model,
    ]
