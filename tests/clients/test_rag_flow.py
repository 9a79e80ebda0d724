"""A Dify-style RAG flow end to end against shim over real sockets: documents embedded with
LangChain's default ``OpenAIEmbeddings`` (tiktoken ids, decoded by shim), the nearest ones
reranked with the cohere client, the answer asked of chat with openai-python. The fake serves
TEI ``/embed``, TEI ``/rerank`` and TGI ``/generate``."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from tests.clients.stack import ANSWER, GOOD_KEY, Stack, bounded
from tests.fake_hf import relevance

langchain_openai = pytest.importorskip("langchain_openai", reason="langchain-openai")
cohere = pytest.importorskip("cohere", reason="cohere is not installed")
openai = pytest.importorskip("openai", reason="openai is not installed")
pytestmark = pytest.mark.asyncio(loop_scope="module")
TIMEOUT = 10.0

QUESTION = "what is the capital of france"
DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "The Eiffel Tower is in Paris.",
    "France is a country in Europe; its capital is Paris.",
    "Bananas are yellow.",
    "The capital of Italy is Rome.",
]


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _rag(stack: Stack) -> dict[str, Any]:
    # 1. Index: LangChain's defaults (tiktoken ids, batches, base64), as Dify's OpenAI-compatible
    # embedding provider and most RAG tools send them.
    embeddings = langchain_openai.OpenAIEmbeddings(
        base_url=stack.api, api_key=GOOD_KEY, model="embed", max_retries=0, timeout=TIMEOUT
    )
    vectors = embeddings.embed_documents(DOCUMENTS)
    query = embeddings.embed_query(QUESTION)
    nearest = sorted(range(len(DOCUMENTS)), key=lambda i: -_cosine(query, vectors[i]))[:5]
    candidates = [DOCUMENTS[i] for i in nearest]
    # 2. Rerank the candidates (Cohere v2, as Dify's rerank step).
    co = cohere.ClientV2(api_key=GOOD_KEY, base_url=stack.url, timeout=TIMEOUT)
    ranked = co.rerank(model="rerank", query=QUESTION, documents=candidates, top_n=2)
    context = [candidates[r.index] for r in ranked.results]
    # 3. Answer with the context.
    client = openai.OpenAI(base_url=stack.api, api_key=GOOD_KEY, max_retries=0, timeout=TIMEOUT)
    reply = client.chat.completions.create(
        model="tgi",
        messages=[
            {"role": "system", "content": "Answer from the context:\n" + "\n".join(context)},
            {"role": "user", "content": QUESTION},
        ],
    )
    return {"vectors": vectors, "query": query, "candidates": candidates, "context": context,
            "reply": reply}  # fmt: skip


@bounded(30.0)
async def test_dify_style_rag_flow(keyed: Stack, offline_tiktoken: None) -> None:
    out = await asyncio.to_thread(_rag, keyed)
    # Embeddings: one unit vector per document; the ids reached TEI as the texts they encode.
    assert len(out["vectors"]) == len(DOCUMENTS)
    assert all(abs(_cosine(v, v) - 1) < 1e-6 for v in out["vectors"])
    embedded = [s.json()["inputs"] for s in keyed.fake.requests("/tei/embed")]
    sent = [text for inputs in embedded for text in inputs]
    assert sorted(sent) == sorted([*DOCUMENTS, QUESTION])
    # Rerank: best first, by the fake TEI's relevance, over the candidates the vectors chose.
    scores = [relevance(QUESTION, d) for d in out["candidates"]]
    best = sorted(range(len(scores)), key=lambda i: -scores[i])[:2]
    assert out["context"] == [out["candidates"][i] for i in best]
    assert keyed.upstream_calls("/tei/rerank") >= 1
    # Chat: TGI got the rendered prompt with the reranked context; the answer came back.
    reply = out["reply"]
    assert reply.choices[0].message.content == ANSWER
    assert reply.usage.prompt_tokens > 0
    [generate] = keyed.fake.requests("/tgi/generate")
    prompt = generate.json()["inputs"]
    assert all(doc in prompt for doc in out["context"])
    assert "<|im_start|>user\n" + QUESTION in prompt
