"""``/v1/rerank``, ``/rerank`` and ``/v2/rerank``: validate, score the documents in upstream
batches (concurrently), rank best first, cut to ``top_n``.

As ``embeddings``: batches of the model's batch size (TEI's ``max_client_batch_size`` from
``/info`` unless configured), one failed batch fails the request.
"""

from __future__ import annotations

from functools import partial

import msgspec

from shim.adapters import TextRanking
from shim.adapters import text_ranking as tr
from shim.adapters._result import Scores
from shim.config import Task
from shim.context import new_id
from shim.errors import InvalidRequestError
from shim.openai import rerank
from shim.route import Route
from shim.serve.call import Attempt, Reply

_request = msgspec.json.Decoder(rerank.RerankRequest)
_encoder = msgspec.json.Encoder()


async def _score_batch(
    attempt: Attempt, ranker: TextRanking, query: str, batch: list[str]
) -> tuple[list[float], int]:
    path = attempt.route.paths.rerank
    assert path is not None
    body = ranker.to_payload(query=query, texts=batch)
    answer = await attempt.post(path, body, partial(ranker.parse_response, n=len(batch)))
    result: Scores = answer.value
    tokens = result.prompt_tokens
    if tokens is None:
        tokens = answer.count_header("x-compute-tokens") or tr.estimate_tokens(query, batch)
    return result.scores, tokens


async def score(
    attempt: Attempt, ranker: TextRanking, query: str, texts: list[str]
) -> tuple[list[float], int]:
    """Every document's score, in document order: batches sent concurrently and concatenated
    (so a batch's indices are offset by its start)."""
    return await attempt.in_batches(texts, partial(_score_batch, attempt, ranker, query))


class Rerank:
    """One of the rerank routes; ``return_documents``: its default when the request says none."""

    tasks: tuple[Task, ...] = ("text-ranking",)
    decoder = _request

    def __init__(self, path: str, *, return_documents: bool) -> None:
        self.path = path
        self.return_documents = return_documents

    def fault(self, route: Route, request: rerank.RerankRequest) -> InvalidRequestError | None:
        if len(request.documents) > route.config.max_inputs:
            return InvalidRequestError(
                f"At most {route.config.max_inputs} documents per request.", param="documents"
            )
        return None

    async def answer(self, attempt: Attempt, request: rerank.RerankRequest) -> Reply:
        route = attempt.route
        assert route.ranker is not None
        texts = tr.texts_of(request)
        wanted = request.return_documents
        with_documents = self.return_documents if wanted is None else wanted
        scores, tokens = await score(attempt, route.ranker, request.query, texts)
        attempt.call.ctx.prompt_tokens = tokens
        body = rerank.RerankResponse(
            id=new_id(32),
            model=route.name,
            results=[
                rerank.RerankResult(
                    index=i,
                    relevance_score=value,
                    document=rerank.RerankDocument(texts[i]) if with_documents else None,
                )
                for i, value in tr.ranked(scores, request.top_n)
            ],
            usage=rerank.RerankUsage(total_tokens=tokens),
        )
        return _encoder.encode(body)


#: ``/v1/rerank`` and ``/rerank`` (Cohere v1, Jina) return the documents unless refused;
#: ``/v2/rerank`` (Cohere v2) only when asked for.
SERVICES = (
    Rerank("/v1/rerank", return_documents=True),
    Rerank("/rerank", return_documents=True),
    Rerank("/v2/rerank", return_documents=False),
)
