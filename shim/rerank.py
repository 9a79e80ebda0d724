"""Serving ``/v1/rerank``, ``/rerank`` and ``/v2/rerank``: validate, score the documents in
upstream batches (concurrently), rank best first, cut to ``top_n``.

Mirrors ``shim.embeddings``: batches of ``max_batch_size`` documents (TEI's
``max_client_batch_size`` from ``/info`` unless configured), one failed batch fails the request.
"""

from __future__ import annotations

import asyncio

import msgspec

from shim.adapters import text_ranking as tr
from shim.adapters._result import Scores
from shim.api import Call, Reply
from shim.context import RequestContext, new_id
from shim.errors import InvalidRequestError
from shim.handlers import begin, decode, serve_with_fallbacks
from shim.openai import rerank
from shim.routing import Route
from shim.upstream import Upstream, fan_out

#: Upstream calls one request may have in flight at once.
MAX_PARALLEL_BATCHES = 8
_request = msgspec.json.Decoder(rerank.RerankRequest)
_encoder = msgspec.json.Encoder()


async def _score_batch(
    upstream: Upstream,
    route: Route,
    query: str,
    batch: list[str],
    ctx: RequestContext,
    gate: asyncio.Semaphore,
) -> tuple[list[float], int]:
    config = route.config
    body = tr.to_payload(
        route.protocol,
        query=query,
        texts=batch,
        truncate=config.truncate,
        raw_scores=config.raw_scores,
        upstream_model=route.hf_model or route.name,
    )
    path = route.paths.rerank
    assert path is not None
    n = len(batch)

    def parse(content: bytes) -> Scores:
        return tr.parse_response(route.protocol, content, n=n)

    async with gate:
        answer = await upstream.post(route, path, body, ctx, parse=parse)
    result = answer.value
    tokens = result.prompt_tokens
    if tokens is None:
        tokens = answer.count_header("x-compute-tokens") or tr.estimate_tokens(query, batch)
    return result.scores, tokens


async def score(
    upstream: Upstream, route: Route, query: str, texts: list[str], ctx: RequestContext
) -> tuple[list[float], int]:
    """Every document's score, in document order: batches sent concurrently and concatenated
    (so a batch's indices are offset by its start)."""
    size = route.max_batch_size
    batches = [texts[i : i + size] for i in range(0, len(texts), size)]
    gate = asyncio.Semaphore(MAX_PARALLEL_BATCHES)
    if len(batches) == 1:
        return await _score_batch(upstream, route, query, batches[0], ctx, gate)
    results = await fan_out(
        ctx, [_score_batch(upstream, route, query, b, ctx, gate) for b in batches]
    )
    scores: list[float] = []
    tokens = 0
    for part, count in results:
        scores.extend(part)
        tokens += count
    return scores, tokens


async def _rerank(call: Call, *, return_documents: bool) -> Reply:
    services, ctx = call.services, call.ctx
    req = decode(_request, call.body)
    route = begin(services, ctx, req.model, "text-ranking", endpoint="/v1/rerank")
    texts = tr.texts_of(req)
    if len(texts) > route.config.max_inputs:
        raise InvalidRequestError(
            f"At most {route.config.max_inputs} documents per request.", param="documents"
        )
    with_documents = return_documents if req.return_documents is None else req.return_documents

    async def serve(current: Route) -> Reply:
        scores, tokens = await score(services.upstream, current, req.query, texts, ctx)
        ctx.prompt_tokens = tokens
        body = rerank.RerankResponse(
            id=new_id(32),
            model=current.name,
            results=[
                rerank.RerankResult(
                    index=i,
                    relevance_score=value,
                    document=rerank.RerankDocument(texts[i]) if with_documents else None,
                )
                for i, value in tr.ranked(scores, req.top_n)
            ],
            usage=rerank.RerankUsage(total_tokens=tokens),
        )
        return _encoder.encode(body)

    return await serve_with_fallbacks(call, route, serve)


async def create_rerank(call: Call) -> Reply:
    """``/v1/rerank`` and ``/rerank`` (Cohere v1, Jina): documents returned unless refused."""
    return await _rerank(call, return_documents=True)


async def create_rerank_v2(call: Call) -> Reply:
    """``/v2/rerank`` (Cohere v2): documents returned only when asked for."""
    return await _rerank(call, return_documents=False)
