"""HTTP handlers: decode → route → adapter → upstream → encode. Thin by design; the work is in
``generation`` (rendered protocols), ``passthrough`` (OpenAI upstreams) and ``embeddings``.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.datastructures import State

from shim import generation, limits, passthrough
from shim.adapters import _params, _prompt
from shim.api import Call, Reply, api_route
from shim.config import Task
from shim.context import RequestContext, context_of
from shim.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    UpstreamError,
    UpstreamRejectedError,
)
from shim.formats import ChatFormat, CompletionFormat
from shim.openai import chat, completions
from shim.routing import GenerationAdapter, Route
from shim.services import Services

T = TypeVar("T")
GENERATION_TASKS: tuple[Task, ...] = ("text-generation", "text2text-generation")
_chat_request = msgspec.json.Decoder(chat.ChatCompletionRequest)
_completion_request = msgspec.json.Decoder(completions.CompletionRequest)
_raw_request = msgspec.json.Decoder(dict[str, Any])
_MISSING = re.compile(r"Object missing required field `([^`]*)`")
#: The allowed values named in a 400 for an enum field, by field name.
_CHOICES: dict[str, tuple[str, ...]] = {"role": typing.get_args(chat.Role)}


def services_of(state: State) -> Services:
    services: Services = state.shim
    return services


def _param_of(message: str) -> str | None:
    at = message.rfind(" - at `$")
    if at == -1:
        return None
    return message[at + 8 : -1].lstrip(".") or None


def decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """Decode a request body; every failure is a 400 naming the field when there is one."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        param = _param_of(message)
        missing = _MISSING.match(message)
        if missing:
            field = ".".join(p for p in (param, missing.group(1)) if p)
            raise InvalidRequestError(f"`{field}` is required.", param=field) from None
        if param is None:
            raise InvalidRequestError(f"Invalid request body: {message}") from None
        text = message[: message.rfind(" - at `$")]
        choices = _CHOICES.get(param.rsplit(".", 1)[-1])
        if choices is not None and text.startswith("Invalid enum value"):
            # The allowed values, not the client's (which may be long or hold control tokens).
            text = f"expected one of {', '.join(choices)}."
        raise InvalidRequestError(f"Invalid `{param}`: {text}", param=param) from None
    except msgspec.DecodeError as exc:
        if not body.strip():
            raise InvalidRequestError("The request body is empty; send a JSON object.") from None
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from None


def may_use(ctx: RequestContext | None, model: str) -> bool:
    """Whether the request's key may use ``model`` (configured or not)."""
    key = ctx.key if ctx is not None else None
    return key is None or key.models is None or model in key.models


def begin(
    services: Services, ctx: RequestContext, model: str, *tasks: Task, endpoint: str
) -> Route:
    """The route of ``model`` for ``endpoint``, bound to the request (label, in-flight gauge).

    A model the request's key may not use is answered exactly as one that does not exist (404
    ``model_not_found``), before anything else about it, such as its task, is looked at: a
    key cannot discover the other models."""
    if not may_use(ctx, model):
        raise ModelNotFoundError(model)
    route = services.router.for_task(model, *tasks, endpoint=endpoint)
    ctx.model = route.name
    services.metrics.start(ctx)
    ctx.routed = True
    return route


async def serve_with_fallbacks(
    call: Call,
    route: Route,
    serve: Callable[[Route], Awaitable[Reply]],
    *,
    admits: Callable[[Route], bool] | None = None,
) -> Reply:
    """Serve on ``route``, then on its ``fallbacks`` (those that ``admits`` the request) when
    all its upstreams failed. Each try holds a concurrency slot of its model; a stream keeps
    it until the reply ends (``call.slot``, released by ``api_route``)."""
    # Fallbacks are looked up now: a reload may have changed them since the route was built.
    routes = call.services.router.routes
    fallbacks = (routes[name] for name in route.fallbacks if name in routes)
    chain = [route, *(r for r in fallbacks if admits is None or admits(r))]
    for i, current in enumerate(chain):
        slot = current.acquire_slot()
        await slot.acquire()
        try:
            reply = await serve(current)
            if not isinstance(reply, bytes):
                call.slot = slot
            return reply
        except UpstreamError as exc:
            if isinstance(exc, UpstreamRejectedError) or i == len(chain) - 1:
                raise
            call.ctx.error_reason = exc.reason
        finally:
            if call.slot is not slot:
                slot.release()
    raise AssertionError("unreachable")


def _passthrough(call: Call, kind: passthrough.Kind) -> Callable[[Route], Awaitable[Reply]]:
    """Serving on an ``openai`` upstream: the request as the client sent it (decoded once)."""
    raw: dict[str, Any] | None = None

    async def serve(route: Route) -> Reply:
        nonlocal raw
        if raw is None:
            raw = decode(_raw_request, call.body)
        services = call.services
        return await passthrough.respond(
            services.upstream, services.metrics, route, raw, call.ctx, kind=kind
        )

    return serve


def _chat_prompt(route: Route, req: chat.ChatCompletionRequest) -> str:
    if route.template is not None:
        return _prompt.render(route.template, req.messages)
    if route.task == "text2text-generation":
        return _prompt.render_plain(req.messages)
    raise InvalidRequestError(
        f"The model `{route.name}` has no chat template. Set `chat_template` in its config (a "
        "built-in such as chatml, llama-3, mistral; inline Jinja; or a file), or use "
        "/v1/completions with a ready prompt.",
        param="messages",
        code="chat_template_missing",
    )


async def _generation(
    call: Call,
    model: str,
    *,
    endpoint: str,
    kind: passthrough.Kind,
    demand: limits.Demand,
    job_for: Callable[[Route, GenerationAdapter], generation.Job],
) -> Reply:
    """Chat or completions: the ``openai`` upstreams get the request as sent, rendered
    protocols the ``Job`` that ``job_for`` builds for the route; fallbacks may cross both.
    The model's limits apply first, whatever its protocol."""
    services, ctx = call.services, call.ctx
    route = begin(services, ctx, model, *GENERATION_TASKS, endpoint=endpoint)
    limits.check(route, demand)
    openai_upstream = _passthrough(call, kind)

    async def serve(current: Route) -> Reply:
        if current.protocol == "openai":
            return await openai_upstream(current)
        assert current.adapter is not None
        job = job_for(current, current.adapter)
        return await generation.respond(services.upstream, services.metrics, job, ctx)

    return await serve_with_fallbacks(
        call, route, serve, admits=lambda other: limits.fits(other, demand)
    )


async def chat_completions(call: Call) -> Reply:
    req = decode(_chat_request, call.body)

    def job_for(route: Route, adapter: GenerationAdapter) -> generation.Job:
        params = _params.from_chat(req)
        if req.stream and params.n > 1:
            raise InvalidRequestError("Streaming with `n` > 1 is not supported here.", param="n")
        return generation.Job(
            route=route,
            adapter=adapter,
            params=params,
            prompts=[_chat_prompt(route, req)],
            fmt=ChatFormat(route.name),
            stream=bool(req.stream),
            include_usage=bool(req.stream_options and req.stream_options.include_usage),
        )

    return await _generation(
        call,
        req.model,
        endpoint="/v1/chat/completions",
        kind="chat",
        demand=limits.of_chat(req),
        job_for=job_for,
    )


def _prompts(req: completions.CompletionRequest) -> list[str]:
    prompt = req.prompt
    if isinstance(prompt, str):
        return [prompt]
    prompts = [p for p in prompt if isinstance(p, str)]
    if len(prompts) != len(prompt):
        raise InvalidRequestError(
            'Token-id prompts need an upstream that accepts ids: set protocol = "openai".',
            param="prompt",
        )
    if not prompts:
        raise InvalidRequestError("`prompt` must not be empty.", param="prompt")
    return prompts


async def text_completions(call: Call) -> Reply:
    req = decode(_completion_request, call.body)

    def job_for(route: Route, adapter: GenerationAdapter) -> generation.Job:
        params = _params.from_completion(req)
        if params.max_tokens is None and route.default_max_tokens is None:
            params.max_tokens = _params.COMPLETIONS_DEFAULT_MAX_TOKENS
        prompts = _prompts(req)
        if req.stream and (params.n > 1 or len(prompts) > 1):
            raise InvalidRequestError(
                "Streaming is supported for one prompt and `n` = 1.",
                param="n" if params.n > 1 else "prompt",
            )
        return generation.Job(
            route=route,
            adapter=adapter,
            params=params,
            prompts=prompts,
            fmt=CompletionFormat(route.name),
            stream=bool(req.stream),
            include_usage=bool(req.stream_options and req.stream_options.include_usage),
        )

    return await _generation(
        call,
        req.model,
        endpoint="/v1/completions",
        kind="completions",
        demand=limits.of_completion(req),
        job_for=job_for,
    )


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    services, ctx = services_of(state), context_of(request.scope)
    key = ctx.key if ctx is not None else None
    if key is None or key.models is None:
        return Response(services.router.models_body, media_type=MediaType.JSON)
    models = [model for name, model in services.router.models.items() if may_use(ctx, name)]
    from shim.openai.common import ModelList

    return Response(msgspec.json.encode(ModelList(data=models)), media_type=MediaType.JSON)


@get("/v1/models/{model_id:path}")
async def retrieve_model(
    request: Request[Any, Any, Any], state: State, model_id: str
) -> Response[bytes]:
    services, ctx = services_of(state), context_of(request.scope)
    name = model_id.lstrip("/")
    model = services.router.models.get(name)
    if model is None or not may_use(ctx, name):
        raise ModelNotFoundError(name)
    return Response(msgspec.json.encode(model), media_type=MediaType.JSON)


def route_handlers() -> list[Any]:
    """The API's route handlers, for the app."""
    from shim.embeddings import create_embeddings

    return [
        api_route("/v1/chat/completions", chat_completions),
        api_route("/v1/completions", text_completions),
        api_route("/v1/embeddings", create_embeddings),
        list_models,
        retrieve_model,
    ]
