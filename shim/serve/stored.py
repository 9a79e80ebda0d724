"""Stored responses: ``GET`` and ``DELETE /v1/responses/{id}``, ``GET
/v1/responses/{id}/input_items`` (OpenAI's list shape: ``limit``, ``order``, ``after``).

A response is its creator's: the client key's name owns it (``responses.owner_of``), and any
other key gets the 404 of a response that does not exist. Without client keys every caller
shares one space.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec
from litestar import MediaType, Request, Response, delete, get
from litestar.datastructures import State

from shim.context import RequestContext, context_of
from shim.openai import responses as rs
from shim.serve.responses import owner_of
from shim.services import Services
from shim.state import SHARED_OWNER, not_found
from shim.state._store import DEFAULT_LIMIT, Order

_encoder = msgspec.json.Encoder()


def _owner(request: Request[Any, Any, Any]) -> tuple[RequestContext | None, str]:
    ctx = context_of(request.scope)
    return ctx, owner_of(ctx) if ctx is not None else SHARED_OWNER


def _label(services: Services, ctx: RequestContext | None, model: str) -> None:
    """The metrics' model label: the response's model, when the config still has it."""
    if ctx is not None and model in services.active.router.routes:
        ctx.model = model


def _json(body: bytes) -> Response[bytes]:
    return Response(body, media_type=MediaType.JSON)


@get("/v1/responses/{response_id:str}")
async def retrieve_response(
    request: Request[Any, Any, Any], state: State, response_id: str
) -> Response[bytes]:
    services: Services = state.shim
    ctx, owner = _owner(request)
    record = await services.stored.responses.get(response_id, owner=owner)
    if record is None:
        raise not_found(response_id)
    _label(services, ctx, record.response.model)
    return _json(_encoder.encode(record.response))


@delete("/v1/responses/{response_id:str}", status_code=200)
async def delete_response(
    request: Request[Any, Any, Any], state: State, response_id: str
) -> Response[bytes]:
    services: Services = state.shim
    _, owner = _owner(request)
    if not await services.stored.responses.delete(response_id, owner=owner):
        raise not_found(response_id)
    return _json(_encoder.encode(rs.DeletedResponse(id=response_id)))


@get("/v1/responses/{response_id:str}/input_items")
async def list_input_items(
    request: Request[Any, Any, Any],
    state: State,
    response_id: str,
    limit: int = DEFAULT_LIMIT,
    order: str = "desc",
    after: str | None = None,
) -> Response[bytes]:
    services: Services = state.shim
    _, owner = _owner(request)
    page = await services.stored.responses.list_input_items(
        response_id,
        owner=owner,
        limit=limit,
        # Any other value is refused by the store's paging with a 400 naming `order`.
        order=cast(Order, order),
        after=after,
    )
    if page is None:
        raise not_found(response_id)
    return _json(_encoder.encode(page))


route_handlers = [retrieve_response, delete_response, list_input_items]
