"""LlamaIndex's OpenAI integrations against shim over real sockets.

Optional: ``llama-index-llms-openai-like`` and ``llama-index-embeddings-openai`` pin ``openai<3``
(through ``llama-index-llms-openai``) and pull in ~240 MB, so they are not in the ``test`` extra;
these tests run where they are installed (in an environment of their own) and skip otherwise.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from tests.clients.stack import ANSWER, GOOD_KEY, PIPELINE_EMBED_MODEL, ROUTER_MODEL, Stack, bounded

openai_like = pytest.importorskip(
    "llama_index.llms.openai_like",
    reason="llama-index-llms-openai-like is not installed (optional: it pins openai<3)",
)
core_llms = pytest.importorskip("llama_index.core.llms")
pytestmark = pytest.mark.asyncio(loop_scope="module")
TIMEOUT = 10.0


@pytest.mark.parametrize("model", ["tgi", "vllm", ROUTER_MODEL])
@bounded()
async def test_openai_like_chat(keyed: Stack, model: str) -> None:
    llm = openai_like.OpenAILike(
        model=model,
        api_base=keyed.api,
        api_key=GOOD_KEY,
        is_chat_model=True,
        context_window=4096,
        max_retries=0,
        timeout=TIMEOUT,
    )
    messages = [core_llms.ChatMessage(role="user", content="Say hello.")]

    def run() -> tuple[str | None, str]:
        answer = llm.chat(messages)
        streamed = "".join(r.delta or "" for r in llm.stream_chat(messages))
        return answer.message.content, streamed

    content, streamed = await asyncio.to_thread(run)
    assert content == ANSWER
    assert streamed == ANSWER
    answer = await llm.achat(messages)
    assert answer.message.content == ANSWER


@bounded()
async def test_openai_like_completion(keyed: Stack) -> None:
    llm = openai_like.OpenAILike(
        model="tgi",
        api_base=keyed.api,
        api_key=GOOD_KEY,
        is_chat_model=False,
        max_retries=0,
        timeout=TIMEOUT,
    )
    completion = await asyncio.to_thread(llm.complete, "Once upon")
    assert completion.text == ANSWER


@pytest.mark.parametrize("model", ["embed", PIPELINE_EMBED_MODEL])
@bounded()
async def test_openai_embedding(keyed: Stack, model: str) -> None:
    embeddings_openai = pytest.importorskip(
        "llama_index.embeddings.openai",
        reason="llama-index-embeddings-openai is not installed (optional: it pins openai<3)",
    )
    # `model=` only takes OpenAI's own names; `model_name=` is the way to name any other model.
    embedder = embeddings_openai.OpenAIEmbedding(
        model_name=model,
        api_base=keyed.api,
        api_key=GOOD_KEY,
        max_retries=0,
        timeout=TIMEOUT,
    )

    def run() -> tuple[list[float], list[list[float]]]:
        query = embedder.get_query_embedding("The food was delicious.")
        texts = embedder.get_text_embedding_batch(["The food was delicious.", "Rude waiter."])
        return query, texts

    query, texts = await asyncio.to_thread(run)
    assert len(texts) == 2
    assert query == pytest.approx(texts[0], rel=1e-6, abs=1e-7)
    assert texts[0] != pytest.approx(texts[1])
    assert math.fsum(x * x for x in query) == pytest.approx(1.0, rel=1e-5)
