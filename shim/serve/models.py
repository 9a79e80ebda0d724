"""``GET /v1/models`` and ``GET /v1/models/{id}``: the configured models a caller's key may use."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.datastructures import State

from shim.context import context_of
from shim.errors import ModelNotFoundError
from shim.openai.common import ModelList
from shim.services import Services
from shim.state import Active


def _visible(active: Active, request: Request[Any, Any, Any]) -> list[str]:
    ctx = context_of(request.scope)
    key = ctx.key if ctx is not None else None
    models = active.router.models
    if key is None or key.models is None:
        return list(models)
    return [m for m in models if m in key.models]


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    services: Services = state.shim
    active = services.active
    ctx = context_of(request.scope)
    if ctx is None or ctx.key is None or ctx.key.models is None:
        return Response(active.router.models_body, media_type=MediaType.JSON)
    models = [active.router.models[m] for m in _visible(active, request)]
    return Response(msgspec.json.encode(ModelList(data=models)), media_type=MediaType.JSON)


@get("/v1/models/{model_id:path}")
async def retrieve_model(
    request: Request[Any, Any, Any], state: State, model_id: str
) -> Response[bytes]:
    services: Services = state.shim
    active = services.active
    name = model_id.lstrip("/")
    if name not in _visible(active, request):
        raise ModelNotFoundError(name)
    return Response(msgspec.json.encode(active.router.models[name]), media_type=MediaType.JSON)
