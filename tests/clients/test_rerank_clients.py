"""Rerank clients against shim over real sockets: the cohere SDK (v1 and v2 clients, sync and
async), Dify's OpenAI-compatible rerank call, LangChain's ``CohereRerank`` and LlamaIndex's
(when installed)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.clients.stack import GOOD_KEY, Stack, bounded
from tests.fake_hf import relevance, sigmoid

cohere = pytest.importorskip("cohere", reason="cohere is not installed (pip install cohere)")
pytestmark = pytest.mark.asyncio(loop_scope="module")
TIMEOUT = 10.0

QUERY = "what is the capital of france"
DOCS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "The Eiffel Tower is in Paris.",
    "France is a country in Europe; its capital is Paris.",
    "Bananas are yellow.",
    "The capital of Italy is Rome.",
]
#: More documents than the TEI's batch limit (4): two upstream calls, merged.
SCORES = [sigmoid(relevance(QUERY, d)) for d in DOCS]
BEST_FIRST = sorted(range(len(DOCS)), key=lambda i: -SCORES[i])


def _check(results: list[Any], top_n: int) -> None:
    assert [r.index for r in results] == BEST_FIRST[:top_n]
    assert [r.relevance_score for r in results] == pytest.approx(
        [SCORES[i] for i in BEST_FIRST[:top_n]]
    )


@pytest.mark.parametrize("model", ["rerank", "rerank-vllm"])
@bounded()
async def test_cohere_v1_client(keyed: Stack, model: str) -> None:
    def run() -> tuple[Any, Any]:
        client = cohere.Client(api_key=GOOD_KEY, base_url=keyed.url, timeout=TIMEOUT)
        plain = client.rerank(model=model, query=QUERY, documents=DOCS, top_n=3)
        objects = client.rerank(
            model=model,
            query=QUERY,
            documents=[{"text": d, "title": str(i)} for i, d in enumerate(DOCS)],
            return_documents=False,
            rank_fields=["text"],
        )
        return plain, objects

    plain, objects = await asyncio.to_thread(run)
    _check(plain.results, 3)
    # v1 returns the documents unless told not to.
    assert [r.document.text for r in plain.results] == [DOCS[i] for i in BEST_FIRST[:3]]
    assert plain.id and plain.meta.billed_units.search_units == 1
    _check(objects.results, len(DOCS))
    assert all(r.document is None for r in objects.results)
    if model == "rerank":
        assert keyed.upstream_calls("/tei/rerank") == 4  # 6 documents in batches of 4, twice


@pytest.mark.parametrize("model", ["rerank", "rerank-vllm"])
@bounded()
async def test_cohere_v2_client(keyed: Stack, model: str) -> None:
    def run() -> Any:
        client = cohere.ClientV2(api_key=GOOD_KEY, base_url=keyed.url, timeout=TIMEOUT)
        return client.rerank(
            model=model, query=QUERY, documents=DOCS, top_n=2, max_tokens_per_doc=512
        )

    response = await asyncio.to_thread(run)
    _check(response.results, 2)
    assert response.meta.billed_units.search_units == 1
    async_client = cohere.AsyncClientV2(api_key=GOOD_KEY, base_url=keyed.url, timeout=TIMEOUT)
    again = await async_client.rerank(model=model, query=QUERY, documents=DOCS)
    _check(again.results, len(DOCS))


@bounded()
async def test_cohere_errors_are_typed(keyed: Stack) -> None:
    client = cohere.AsyncClientV2(api_key=GOOD_KEY, base_url=keyed.url, timeout=TIMEOUT)
    with pytest.raises(cohere.NotFoundError):
        await client.rerank(model="ghost", query=QUERY, documents=DOCS)
    with pytest.raises(cohere.BadRequestError) as bad:
        await client.rerank(model="rerank", query=QUERY, documents=[])
    assert bad.value.body["error"]["param"] == "documents"
    anonymous = cohere.AsyncClientV2(api_key="wrong", base_url=keyed.url, timeout=TIMEOUT)
    with pytest.raises(cohere.UnauthorizedError):
        await anonymous.rerank(model="rerank", query=QUERY, documents=DOCS)


@pytest.mark.parametrize("model", ["rerank", "rerank-vllm"])
@bounded()
async def test_dify_openai_compatible_rerank(keyed: Stack, model: str) -> None:
    """What Dify's ``openai_api_compatible`` rerank provider sends (endpoint URL + "/rerank",
    ``top_n`` null unless set, ``return_documents`` true) and how it reads the answer."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        for top_n in (None, 2):
            r = await http.post(
                f"{keyed.api}/rerank",
                headers={"Authorization": f"Bearer {GOOD_KEY}", "Content-Type": "application/json"},
                json={
                    "model": model,
                    "query": QUERY,
                    "documents": DOCS,
                    "top_n": top_n,
                    "return_documents": True,
                },
            )
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert len(results) == (top_n or len(DOCS))
            scores = [x["relevance_score"] for x in results]
            low, high = min(scores), max(scores)
            normalised = [(s - low) / ((high - low) or 1.0) for s in scores]
            assert normalised[0] == 1.0
            assert [x["document"]["text"] for x in results] == [DOCS[x["index"]] for x in results]


@bounded()
async def test_langchain_cohere_rerank(keyed: Stack) -> None:
    langchain_cohere = pytest.importorskip(
        "langchain_cohere", reason="langchain-cohere is not installed"
    )
    from langchain_core.documents import Document

    def run() -> tuple[Any, Any]:
        reranker = langchain_cohere.CohereRerank(
            model="rerank", cohere_api_key=GOOD_KEY, base_url=keyed.url, top_n=2
        )
        documents = [Document(page_content=d, metadata={"n": i}) for i, d in enumerate(DOCS)]
        return reranker.compress_documents(documents, QUERY), reranker.rerank(DOCS, QUERY)

    compressed, ranked = await asyncio.to_thread(run)
    assert [d.metadata["n"] for d in compressed] == BEST_FIRST[:2]
    assert [d.metadata["relevance_score"] for d in compressed] == pytest.approx(
        [SCORES[i] for i in BEST_FIRST[:2]]
    )
    assert [r["index"] for r in ranked] == BEST_FIRST[:2]


@bounded()
async def test_llamaindex_cohere_rerank(keyed: Stack) -> None:
    # Not in the test extra: llama-index-core brings ~30 packages (nltk, SQLAlchemy...).
    module = pytest.importorskip(
        "llama_index.postprocessor.cohere_rerank",
        reason="llama-index-postprocessor-cohere-rerank is not installed",
    )
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    def run() -> list[Any]:
        reranker = module.CohereRerank(
            api_key=GOOD_KEY, model="rerank", top_n=2, base_url=keyed.url
        )
        nodes = [NodeWithScore(node=TextNode(text=d, id_=str(i))) for i, d in enumerate(DOCS)]
        result: list[Any] = reranker.postprocess_nodes(nodes, QueryBundle(QUERY))
        return result

    nodes = await asyncio.to_thread(run)
    assert [int(n.node.id_) for n in nodes] == BEST_FIRST[:2]
    assert [n.score for n in nodes] == pytest.approx([SCORES[i] for i in BEST_FIRST[:2]])
