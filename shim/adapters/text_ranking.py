"""text-ranking (rerank) on TEI (``/rerank``), the inference toolkit's text-ranking pipeline
(``[query, text]`` pairs) and upstreams that serve the Cohere/Jina rerank API (vLLM): one
adapter per protocol, options bound at config load. Pure.

Every answer becomes one score per document in the order the documents were sent (``Scores``),
whatever order the upstream ranked them in, so batches merge by concatenation; ranking best
first and ``top_n`` happen once, on the merged scores (``ranked``).
"""

from __future__ import annotations

import msgspec

from shim import hf
from shim.adapters._result import Scores
from shim.config import Protocol
from shim.errors import InvalidRequestError, decode_answer, invalid_response
from shim.openai import rerank

#: Request fields shim acts on.
MAPPED = frozenset({"model", "query", "documents", "top_n", "return_documents"})
#: Request fields accepted and ignored, with the reason.
IGNORED = {
    "max_chunks_per_doc": "Cohere v1 splits long documents into chunks; shim sends each "
    "document whole (the model's `truncate` setting decides what TEI does with long ones)",
    "max_tokens_per_doc": "Cohere v2's truncation length; truncation is the model's `truncate`",
    "rank_fields": "Cohere v1 ranks object fields; shim ranks each document's `text`",
    "priority": "Cohere v2 scheduling priority: no upstream has an equivalent",
}

_encoder = msgspec.json.Encoder()
_tei = msgspec.json.Decoder(list[hf.Rank])
# The toolkit answers pairs with {"scores"}; its query/texts form (and TEI) with ranks.
_pipeline = msgspec.json.Decoder(hf.PipelineRankScores | list[hf.Rank])
_openai = msgspec.json.Decoder(rerank.UpstreamRerankResponse)


def texts_of(req: rerank.RerankRequest) -> list[str]:
    """The documents as texts, after the checks every rerank API makes (400 naming the field)."""
    if not req.query.strip():
        raise InvalidRequestError("`query` must not be empty.", param="query")
    if not req.documents:
        raise InvalidRequestError("`documents` must not be empty.", param="documents")
    if req.top_n is not None and req.top_n < 1:
        raise InvalidRequestError("`top_n` must be at least 1.", param="top_n")
    return [d if isinstance(d, str) else d.text for d in req.documents]


def _scatter(ranks: list[tuple[int, float]], n: int) -> list[float]:
    """Scores in document order from (index, score) pairs in any order; each index once."""
    if len(ranks) != n:
        raise invalid_response(f"{len(ranks)} scores for {n} documents")
    scores: list[float | None] = [None] * n
    for index, score in ranks:
        if not 0 <= index < n or scores[index] is not None:
            raise invalid_response(f"a score for document {index} of {n}, or twice")
        scores[index] = score
    return [s for s in scores if s is not None]


class TEI:
    """TEI ``POST /rerank``: ranks best first, with indices."""

    def __init__(self, *, truncate: bool | None, raw_scores: bool) -> None:
        self.truncate = truncate
        self.raw_scores = raw_scores

    def to_payload(self, *, query: str, texts: list[str]) -> bytes:
        request = hf.RerankRequest(
            query=query,
            texts=texts,
            raw_scores=self.raw_scores,
            return_text=False,
            truncate=self.truncate,
        )
        return _encoder.encode(request)

    def parse_response(self, body: bytes, *, n: int) -> Scores:
        ranks = decode_answer(_tei, body, "rerank")
        return Scores(_scatter([(r.index, r.score) for r in ranks], n))


class Pipeline:
    """The toolkit's text-ranking pipeline: ``[query, text]`` pairs, scores in input order."""

    def to_payload(self, *, query: str, texts: list[str]) -> bytes:
        return _encoder.encode(hf.PipelineRankRequest(inputs=[(query, text) for text in texts]))

    def parse_response(self, body: bytes, *, n: int) -> Scores:
        decoded = decode_answer(_pipeline, body, "rerank")
        if isinstance(decoded, list):
            return Scores(_scatter([(r.index, r.score) for r in decoded], n))
        values = decoded.scores
        scores = [values] if isinstance(values, float) else values
        if len(scores) != n:
            raise invalid_response(f"{len(scores)} scores for {n} documents")
        return Scores(scores)


class RerankAPI:
    """An upstream serving the Cohere/Jina rerank API (vLLM): documents back never asked for."""

    def __init__(self, *, upstream_model: str) -> None:
        self.upstream_model = upstream_model

    def to_payload(self, *, query: str, texts: list[str]) -> bytes:
        request = rerank.UpstreamRerankRequest(
            model=self.upstream_model, query=query, documents=texts, return_documents=False
        )
        return _encoder.encode(request)

    def parse_response(self, body: bytes, *, n: int) -> Scores:
        answer = decode_answer(_openai, body, "rerank")
        ranks = [(r.index, r.relevance_score) for r in answer.results]
        tokens = answer.usage.total_tokens if answer.usage else None
        return Scores(_scatter(ranks, n), tokens or None)


def for_protocol(
    protocol: Protocol, *, truncate: bool | None, raw_scores: bool, upstream_model: str
) -> TEI | Pipeline | RerankAPI:
    """The adapter for a text-ranking model's protocol (chosen at config load)."""
    if protocol == "tei":
        return TEI(truncate=truncate, raw_scores=raw_scores)
    if protocol == "openai":
        return RerankAPI(upstream_model=upstream_model)
    return Pipeline()


def ranked(scores: list[float], top_n: int | None) -> list[tuple[int, float]]:
    """(index, score) best first, ties in document order; the first ``top_n`` when given."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    if top_n is not None:
        order = order[:top_n]
    return [(i, scores[i]) for i in order]


def estimate_tokens(query: str, texts: list[str]) -> int:
    """Documented estimate when the upstream reports no count: each document is scored with the
    query, ~4 characters per token plus 3 special tokens per pair."""
    per_query = (len(query) + 3) // 4
    return sum(per_query + (len(text) + 3) // 4 + 3 for text in texts)
