"""Serving ``/v1/embeddings``: validate, split into upstream batches (concurrently, in order),
normalise shapes, encode floats or base64."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import msgspec

from shim.adapters import feature_extraction as fx
from shim.api import Call, Reply
from shim.context import RequestContext
from shim.errors import InvalidRequestError
from shim.handlers import begin, decode, serve_with_fallbacks
from shim.openai import embeddings
from shim.openai.common import EmbeddingUsage
from shim.routing import Route
from shim.upstream import Upstream, fan_out

#: Upstream calls one request may have in flight at once.
MAX_PARALLEL_BATCHES = 8
_request = msgspec.json.Decoder(embeddings.EmbeddingRequest)
_encoder = msgspec.json.Encoder()


# One input's embedding as it goes out: floats, base64, or the upstream's own JSON for either.
Item = list[float] | str | msgspec.Raw


class Plan(NamedTuple):
    """How a request's embeddings are produced, decided once per request."""

    # Pass the upstream's JSON through (tei/openai and nothing to change), else parse floats.
    verbatim: bool
    # What to ask an OpenAI-style upstream for.
    upstream_format: str


def plan_for(route: Route, req: embeddings.EmbeddingRequest) -> Plan:
    if req.dimensions is not None or route.protocol == "pipeline":
        return Plan(verbatim=False, upstream_format="float")
    if route.protocol == "openai":
        return Plan(verbatim=True, upstream_format=req.encoding_format)
    return Plan(verbatim=req.encoding_format == "float", upstream_format="float")


async def _embed_batch(
    upstream: Upstream,
    route: Route,
    batch: fx.Inputs,
    plan: Plan,
    ctx: RequestContext,
    gate: asyncio.Semaphore,
) -> tuple[list[Item], int]:
    config = route.config
    body = fx.to_payload(
        route.protocol,
        batch,
        truncate=config.truncate,
        normalize=config.normalize,
        upstream_model=route.hf_model or "tei",
        encoding_format=plan.upstream_format,
    )
    path = route.paths.embeddings
    assert path is not None
    async with gate:
        answer = await upstream.post(route, path, body, ctx)
    items: list[Item]
    if plan.verbatim:
        raw, tokens = fx.parse_verbatim(route.protocol, answer.content, n=len(batch))
        items = list(raw)
    else:
        result = fx.parse_response(
            route.protocol,
            answer.content,
            n=len(batch),
            pooling=config.pooling,
            normalize=config.normalize,
        )
        items, tokens = list(result.vectors), result.prompt_tokens
    if tokens is None:
        header = answer.headers.get("x-compute-tokens")
        tokens = int(header) if header and header.isdigit() else _count_tokens(route, batch)
    return items, tokens


def _count_tokens(route: Route, batch: fx.Inputs) -> int:
    """With the model's tokenizer when loaded (special tokens included, as the model sees
    them), else the documented estimate."""
    texts = [item for item in batch if isinstance(item, str)]
    if route.tokenizer is None or len(texts) != len(batch):
        return fx.estimate_tokens(batch)
    return sum(len(encoding.ids) for encoding in route.tokenizer.encode_batch(texts))


async def embed(
    upstream: Upstream, route: Route, inputs: fx.Inputs, plan: Plan, ctx: RequestContext
) -> tuple[list[Item], int]:
    """Every input's embedding, in order: batches of ``max_batch_size`` sent concurrently."""
    size = route.max_batch_size
    batches = [inputs[i : i + size] for i in range(0, len(inputs), size)]
    gate = asyncio.Semaphore(MAX_PARALLEL_BATCHES)
    if len(batches) == 1:
        return await _embed_batch(upstream, route, batches[0], plan, ctx, gate)
    # One failed batch cancels the others and fails the request: nothing partial.
    results = await fan_out(
        ctx, [_embed_batch(upstream, route, b, plan, ctx, gate) for b in batches]
    )
    items: list[Item] = []
    tokens = 0
    for part, count in results:
        items.extend(part)
        tokens += count
    return items, tokens


def _finish(items: list[Item], req: embeddings.EmbeddingRequest, plan: Plan) -> list[Item]:
    """Parsed vectors: shortened to ``dimensions`` and encoded as asked."""
    if plan.verbatim:
        return [
            fx.conform(item, req.encoding_format) if isinstance(item, msgspec.Raw) else item
            for item in items
        ]
    vectors = [item for item in items if isinstance(item, list)]
    if req.dimensions is not None:
        vectors = fx.shorten(vectors, req.dimensions)
    if req.encoding_format == "base64":
        return [fx.to_base64(v) for v in vectors]
    return list(vectors)


def _fault(
    route: Route, inputs: int, req: embeddings.EmbeddingRequest
) -> InvalidRequestError | None:
    """The first limit of ``route`` the request exceeds (a fallback that has one is skipped)."""
    if inputs > route.config.max_inputs:
        return InvalidRequestError(
            f"At most {route.config.max_inputs} inputs per request.", param="input"
        )
    if req.dimensions is not None and not route.config.dimensions:
        return InvalidRequestError(
            f"The model `{route.name}` does not support `dimensions` (set `dimensions = true` "
            "in its config for Matryoshka models).",
            param="dimensions",
        )
    return None


async def create_embeddings(call: Call) -> Reply:
    services, ctx = call.services, call.ctx
    req = decode(_request, call.body)
    route = begin(services, ctx, req.model, "feature-extraction", endpoint="/v1/embeddings")
    inputs, _single = fx.inputs_of(req.input)
    fault = _fault(route, len(inputs), req)
    if fault is not None:
        raise fault

    async def serve(current: Route) -> Reply:
        plan = plan_for(current, req)
        items, tokens = await embed(services.upstream, current, inputs, plan, ctx)
        ctx.prompt_tokens = tokens
        body = embeddings.CreateEmbeddingResponse(
            data=[
                embeddings.Embedding(index=i, embedding=item)
                for i, item in enumerate(_finish(items, req, plan))
            ],
            model=current.name,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )
        return _encoder.encode(body)

    return await serve_with_fallbacks(
        call, route, serve, admits=lambda other: _fault(other, len(inputs), req) is None
    )
