"""``POST /v1/embeddings``: validate, split into upstream batches (concurrently, in order),
normalise shapes through the route's adapter, encode floats or base64."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import msgspec

from shim import token_ids
from shim.adapters import FeatureExtraction, _vectors
from shim.adapters import feature_extraction as fx
from shim.config import Task
from shim.errors import InvalidRequestError
from shim.openai import embeddings
from shim.openai.common import EmbeddingUsage
from shim.route import Route
from shim.serve import counting
from shim.serve.call import Attempt, Reply

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


def plan_for(route: Route, adapter: FeatureExtraction, req: embeddings.EmbeddingRequest) -> Plan:
    if req.dimensions is not None or not adapter.verbatim:
        return Plan(verbatim=False, upstream_format="float")
    if route.protocol == "openai":
        return Plan(verbatim=True, upstream_format=req.encoding_format)
    return Plan(verbatim=req.encoding_format == "float", upstream_format="float")


def _count(value: embeddings.EmbeddingInput) -> int:
    """Inputs in OpenAI's ``input`` (a list of token ids is one input), before it is checked."""
    if isinstance(value, str) or (value and isinstance(value[0], int)):
        return 1
    return len(value)


def _fault(route: Route, req: embeddings.EmbeddingRequest) -> InvalidRequestError | None:
    if _count(req.input) > route.config.max_inputs:
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


def _for_route(route: Route, inputs: fx.Inputs) -> fx.Inputs:
    """The inputs as the route takes them: texts as sent; token ids as sent (``token_ids =
    "model"``), refused, or decoded from cl100k_base."""
    if isinstance(inputs[0], str) or route.token_ids == "model":
        return inputs
    if route.token_ids == "reject":
        raise InvalidRequestError(
            f"The model `{route.name}` takes text, not token ids. LangChain's "
            "OpenAIEmbeddings sends tiktoken ids unless `check_embedding_ctx_length=False`.",
            param="input",
        )
    vocabulary = token_ids.cl100k()
    ids = [item for item in inputs if isinstance(item, list)]
    return [vocabulary.decode(item, param=f"input[{i}]") for i, item in enumerate(ids)]


class _Batches:
    """One request's upstream calls, a batch of inputs each."""

    __slots__ = ("adapter", "attempt", "discovery", "plan")

    def __init__(self, attempt: Attempt, adapter: FeatureExtraction, plan: Plan) -> None:
        self.attempt, self.adapter, self.plan = attempt, adapter, plan
        self.discovery = attempt.call.services.discovery

    async def embed(self, batch: fx.Inputs) -> tuple[list[Item], int]:
        route, adapter = self.attempt.route, self.adapter
        body = adapter.to_payload(batch, encoding_format=self.plan.upstream_format)
        path = route.paths.embeddings
        assert path is not None
        answer = await self.attempt.post(path, body, partial(self._parse, n=len(batch)))
        items, tokens = answer.value
        if tokens is None:
            tokens = answer.count_header("x-compute-tokens") or await self._count(route, batch)
        return items, tokens

    def _parse(self, body: bytes, *, n: int) -> tuple[list[Item], int | None]:
        """One batch's answer (inside the upstream attempt: a bad answer fails it)."""
        if self.plan.verbatim:
            raw, tokens = self.adapter.parse_verbatim(body, n=n)
            return list(raw), tokens
        result = self.adapter.parse_response(body, n=n)
        return list(result.vectors), result.prompt_tokens

    async def _count(self, route: Route, batch: fx.Inputs) -> int:
        """With the model's tokenizer when loaded (special tokens included, as the model sees
        them), else the documented estimate."""
        tokenizer = self.discovery.tokenizer(route)
        texts = [item for item in batch if isinstance(item, str)]
        if tokenizer is None or len(texts) != len(batch):
            return fx.estimate_batch_tokens(batch)
        return sum(await counting.count_tokens(tokenizer, texts, special=True))


async def embed(
    attempt: Attempt, adapter: FeatureExtraction, inputs: fx.Inputs, plan: Plan
) -> tuple[list[Item], int]:
    """Every input's embedding, in order (batches sent concurrently)."""
    return await attempt.in_batches(inputs, _Batches(attempt, adapter, plan).embed)


def _finish(items: list[Item], req: embeddings.EmbeddingRequest, plan: Plan) -> list[Item]:
    """Parsed vectors: shortened to ``dimensions`` and encoded as asked."""
    if plan.verbatim:
        return [
            _vectors.conform(item, req.encoding_format) if isinstance(item, msgspec.Raw) else item
            for item in items
        ]
    vectors = [item for item in items if isinstance(item, list)]
    if req.dimensions is not None:
        vectors = _vectors.shorten(vectors, req.dimensions)
    if req.encoding_format == "base64":
        return [_vectors.to_base64(v) for v in vectors]
    return list(vectors)


class Embeddings:
    path = "/v1/embeddings"
    tasks: tuple[Task, ...] = ("feature-extraction",)
    decoder = _request

    def fault(
        self, route: Route, request: embeddings.EmbeddingRequest
    ) -> InvalidRequestError | None:
        return _fault(route, request)

    async def answer(self, attempt: Attempt, request: embeddings.EmbeddingRequest) -> Reply:
        route = attempt.route
        embedder = attempt.call.services.discovery.embedder(route)
        assert embedder is not None
        inputs = _for_route(route, fx.inputs_of(request.input)[0])
        plan = plan_for(route, embedder, request)
        items, tokens = await embed(attempt, embedder, inputs, plan)
        attempt.call.ctx.prompt_tokens = tokens
        body = embeddings.CreateEmbeddingResponse(
            data=[
                embeddings.Embedding(index=i, embedding=item)
                for i, item in enumerate(_finish(items, request, plan))
            ],
            model=route.name,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )
        return _encoder.encode(body)


SERVICE = Embeddings()
