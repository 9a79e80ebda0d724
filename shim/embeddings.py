"""Serving ``/v1/embeddings``: validate, split into upstream batches (concurrently, in order),
normalise shapes, encode floats or base64."""

from __future__ import annotations

import asyncio

import msgspec

from shim.adapters import feature_extraction as fx
from shim.api import Call, Reply
from shim.context import RequestContext
from shim.errors import InvalidRequestError, ShimError
from shim.handlers import begin, decode, serve_with_fallbacks
from shim.openai import embeddings
from shim.openai.common import EmbeddingUsage
from shim.routing import Route
from shim.upstream import Upstream

#: Upstream calls one request may have in flight at once.
MAX_PARALLEL_BATCHES = 8
_request = msgspec.json.Decoder(embeddings.EmbeddingRequest)
_encoder = msgspec.json.Encoder()


async def _embed_batch(
    upstream: Upstream, route: Route, batch: fx.Inputs, ctx: RequestContext, gate: asyncio.Semaphore
) -> tuple[list[list[float]], int]:
    config = route.config
    body = fx.to_payload(
        route.protocol,
        batch,
        truncate=config.truncate,
        normalize=config.normalize,
        upstream_model=route.hf_model or "tei",
    )
    path = route.paths.embeddings
    assert path is not None
    async with gate:
        response = await upstream.post(route, path, body, ctx)
    result = fx.parse_response(
        route.protocol,
        response.content,
        n=len(batch),
        pooling=config.pooling,
        normalize=config.normalize,
    )
    tokens = result.prompt_tokens
    if tokens is None:
        header = response.headers.get("x-compute-tokens")
        tokens = int(header) if header and header.isdigit() else fx.estimate_tokens(batch)
    return result.vectors, tokens


async def embed(
    upstream: Upstream, route: Route, inputs: fx.Inputs, ctx: RequestContext
) -> tuple[list[list[float]], int]:
    size = route.max_batch_size
    batches = [inputs[i : i + size] for i in range(0, len(inputs), size)]
    gate = asyncio.Semaphore(MAX_PARALLEL_BATCHES)
    if len(batches) == 1:
        return await _embed_batch(upstream, route, batches[0], ctx, gate)
    try:
        # One failed batch cancels the others and fails the request: nothing partial.
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_embed_batch(upstream, route, b, ctx, gate)) for b in batches
            ]
    except* ShimError as errors:
        raise errors.exceptions[0] from None
    vectors: list[list[float]] = []
    tokens = 0
    for task in tasks:
        part, count = task.result()
        vectors.extend(part)
        tokens += count
    return vectors, tokens


async def create_embeddings(call: Call) -> Reply:
    services, ctx = call.services, call.ctx
    req = decode(_request, call.body)
    route = services.router.for_task(req.model, "feature-extraction", endpoint="/v1/embeddings")
    begin(services, ctx, route)
    inputs, _single = fx.inputs_of(req.input)
    if len(inputs) > route.config.max_inputs:
        raise InvalidRequestError(
            f"At most {route.config.max_inputs} inputs per request.", param="input"
        )
    if req.dimensions is not None and not route.config.dimensions:
        raise InvalidRequestError(
            f"The model `{route.name}` does not support `dimensions` (set `dimensions = true` "
            "in its config for Matryoshka models).",
            param="dimensions",
        )

    async def serve(current: Route) -> Reply:
        vectors, tokens = await embed(services.upstream, current, inputs, ctx)
        if req.dimensions is not None:
            vectors = fx.shorten(vectors, req.dimensions)
        ctx.prompt_tokens = tokens
        if req.encoding_format == "base64":
            data = [
                embeddings.Embedding(index=i, embedding=fx.to_base64(v))
                for i, v in enumerate(vectors)
            ]
        else:
            data = [embeddings.Embedding(index=i, embedding=v) for i, v in enumerate(vectors)]
        body = embeddings.CreateEmbeddingResponse(
            data=data,
            model=route.name,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )
        return _encoder.encode(body)

    return await serve_with_fallbacks(call, route, serve)
