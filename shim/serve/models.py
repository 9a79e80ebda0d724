"""``GET /v1/models`` and ``GET /v1/models/{id}``: the configured models a caller's key may use."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.datastructures import State

from shim.auth import KeyInfo
from shim.context import context_of
from shim.errors import ModelNotFoundError
from shim.openai.common import ModelList
from shim.services import Services


def _key(request: Request[Any, Any, Any]) -> KeyInfo | None:
    ctx = context_of(request.scope)
    return ctx.key if ctx is not None else None


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    services: Services = state.shim
    router, key = services.active.router, _key(request)
    if key is None or key.models is None:
        return Response(router.models_body, media_type=MediaType.JSON)
    models = [model for name, model in router.models.items() if key.allows(name)]
    return Response(msgspec.json.encode(ModelList(data=models)), media_type=MediaType.JSON)


@get("/v1/models/{model_id:path}")
async def retrieve_model(
    request: Request[Any, Any, Any], state: State, model_id: str
) -> Response[bytes]:
    services: Services = state.shim
    name, key = model_id.lstrip("/"), _key(request)
    model = services.active.router.models.get(name)
    if model is None or (key is not None and not key.allows(name)):
        raise ModelNotFoundError(name)
    return Response(msgspec.json.encode(model), media_type=MediaType.JSON)
