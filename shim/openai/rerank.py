"""``POST /v1/rerank`` (also ``/rerank`` and Cohere's ``/v2/rerank``) wire types.

The de-facto rerank API that Cohere defined and Jina, vLLM, TEI-fronting gateways and Dify's
OpenAI-compatible provider follow (Cohere's API reference ``rerank`` v1/v2; the cohere Python
SDK's ``RerankResponse`` / ``V2RerankResponse``; vLLM ``entrypoints/openai/protocol.py``
``RerankRequest`` / ``RerankResponse``). Also the views shim reads from an upstream that
serves the same API (the ``openai`` protocol).
"""

from __future__ import annotations

import msgspec


class Document(msgspec.Struct):
    """A document sent as an object (Cohere v1, Jina): only ``text`` is ranked; other fields
    (``title``... for Cohere's ``rank_fields``) are ignored."""

    text: str


class RerankRequest(msgspec.Struct):
    model: str
    query: str
    documents: list[str | Document]
    # null = every document (Dify sends null when no top-n is set).
    top_n: int | None = None
    # null = the route's default: true on /v1/rerank and /rerank (Cohere v1, Jina), false on
    # /v2/rerank (Cohere v2).
    return_documents: bool | None = None
    # --- ignored on purpose (reasons in shim.adapters.text_ranking.IGNORED) ---
    max_chunks_per_doc: int | None = None
    max_tokens_per_doc: int | None = None
    rank_fields: list[str] | None = None
    priority: int | None = None


class RerankDocument(msgspec.Struct):
    text: str


class RerankResult(msgspec.Struct, omit_defaults=True):
    # Position of the document in the request's `documents`.
    index: int
    relevance_score: float
    # Only with `return_documents`.
    document: RerankDocument | None = None


class RerankUsage(msgspec.Struct):
    total_tokens: int


class BilledUnits(msgspec.Struct):
    # Cohere bills one search unit per request of up to 100 documents; shim reports 1.
    search_units: int = 1


class ApiMeta(msgspec.Struct):
    billed_units: BilledUnits = msgspec.field(default_factory=BilledUnits)


class RerankResponse(msgspec.Struct, kw_only=True):
    id: str
    model: str
    # Best first; `top_n` of them when it was given.
    results: list[RerankResult]
    usage: RerankUsage
    meta: ApiMeta = msgspec.field(default_factory=ApiMeta)


# --- an upstream that serves this API (vLLM, Jina- or Cohere-style servers) ------------------


class UpstreamRerankRequest(msgspec.Struct, kw_only=True):
    """What shim sends: every document as text, all of them scored (no ``top_n``: shim merges
    batches and cuts itself), no documents echoed (shim has them; vLLM's default is true)."""

    model: str
    query: str
    documents: list[str]
    return_documents: bool


class UpstreamResult(msgspec.Struct):
    index: int
    relevance_score: float


class UpstreamUsage(msgspec.Struct):
    total_tokens: int | None = None


class UpstreamRerankResponse(msgspec.Struct):
    """The fields shim reads from the answer (``document``, ``id``, ``meta`` are not)."""

    results: list[UpstreamResult]
    usage: UpstreamUsage | None = None
