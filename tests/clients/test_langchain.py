"""LangChain's OpenAI integration (``langchain-openai``) against shim over real sockets."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from pydantic import BaseModel

from tests.clients.stack import (
    ANSWER,
    GOOD_KEY,
    PIPELINE_EMBED_MODEL,
    ROUTER_MODEL,
    Stack,
    bounded,
)

langchain_openai = pytest.importorskip(
    "langchain_openai", reason="langchain-openai is not installed (pip install langchain-openai)"
)
pytestmark = pytest.mark.asyncio(loop_scope="module")
TIMEOUT = 10.0


def chat_model(stack: Stack, model: str, **options: Any) -> Any:
    return langchain_openai.ChatOpenAI(
        base_url=stack.api,
        api_key=GOOD_KEY,
        model=model,
        max_retries=0,
        timeout=TIMEOUT,
        **options,
    )


@pytest.mark.parametrize("model", ["tgi", "pipe", "vllm", ROUTER_MODEL])
@bounded()
async def test_chat_invoke_stream_batch(keyed: Stack, model: str) -> None:
    def run() -> dict[str, Any]:
        llm = chat_model(keyed, model)
        message = llm.invoke("Say hello.")
        prompt = [("system", "You are terse."), ("human", "Say hello.")]
        chunks = list(llm.stream(prompt))
        # Off by default for a custom base_url: then shim must send no usage-only chunk.
        with_usage = list(llm.stream(prompt, stream_usage=True))
        batch = llm.batch(["Say hello.", "Say hello again."])
        return {"message": message, "chunks": chunks, "with_usage": with_usage, "batch": batch}

    got = await asyncio.to_thread(run)
    message = got["message"]
    assert message.content == ANSWER
    assert message.response_metadata["model_name"] == model
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.usage_metadata["total_tokens"] == (
        message.usage_metadata["input_tokens"] + message.usage_metadata["output_tokens"]
    )
    chunks = got["chunks"]
    assert "".join(str(c.content) for c in chunks) == ANSWER
    assert all(c.usage_metadata is None for c in chunks)
    merged = got["with_usage"][0]
    for chunk in got["with_usage"][1:]:
        merged = merged + chunk
    assert merged.content == ANSWER
    assert merged.response_metadata["finish_reason"] == "stop"
    assert merged.usage_metadata is not None
    assert merged.usage_metadata["output_tokens"] > 0
    assert [m.content for m in got["batch"]] == [ANSWER, ANSWER]


@bounded()
async def test_chat_async_invoke_and_stream(keyed: Stack) -> None:
    llm = chat_model(keyed, "tgi")
    message = await llm.ainvoke("Say hello.")
    text = "".join([str(chunk.content) async for chunk in llm.astream("Say hello.")])
    assert message.content == ANSWER
    assert text == ANSWER


class Weather(BaseModel):
    city: str
    temperature_c: int


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
@pytest.mark.parametrize("model", ["tgi", "vllm"])
@bounded()
async def test_structured_output(keyed: Stack, model: str, method: str) -> None:
    keyed.fake.tokens = ['{"city": "Paris", ', '"temperature_c": 21}']
    llm = chat_model(keyed, model).with_structured_output(Weather, method=method)
    assert await llm.ainvoke("The weather in Paris?") == Weather(city="Paris", temperature_c=21)


@bounded()
async def test_chat_errors_surface_as_openai_exceptions(keyed: Stack) -> None:
    import openai

    with pytest.raises(openai.NotFoundError) as missing:
        await chat_model(keyed, "gpt-99").ainvoke("hi")
    assert missing.value.code == "model_not_found"


@pytest.mark.parametrize("model", ["embed", PIPELINE_EMBED_MODEL, "oai-embed"])
@bounded()
async def test_embeddings(keyed: Stack, model: str) -> None:
    def run() -> tuple[list[list[float]], list[float]]:
        embeddings = langchain_openai.OpenAIEmbeddings(
            base_url=keyed.api,
            api_key=GOOD_KEY,
            model=model,
            # No tiktoken: shim's models are not OpenAI's, and tiktoken would fetch its files.
            check_embedding_ctx_length=False,
            max_retries=0,
            timeout=TIMEOUT,
        )
        documents = embeddings.embed_documents(["The food was delicious.", "The waiter was rude."])
        query = embeddings.embed_query("The food was delicious.")
        return documents, query

    documents, query = await asyncio.to_thread(run)
    assert len(documents) == 2
    assert len(query) == len(documents[0]) > 0
    assert query == pytest.approx(documents[0], rel=1e-6, abs=1e-7)
    assert documents[0] != pytest.approx(documents[1])
    assert math.fsum(x * x for x in query) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("model", ["embed", PIPELINE_EMBED_MODEL, "oai-embed"])
@bounded()
async def test_embeddings_with_langchains_default_token_ids(
    keyed: Stack, model: str, offline_tiktoken: None
) -> None:
    """``OpenAIEmbeddings()`` with its defaults sends tiktoken (cl100k_base) ids, not text:
    shim decodes them, so the vectors equal those of the same texts sent as strings."""
    texts = ["The food was delicious.", "The waiter was rude.", "Ça coûte 12 € — très cher 🍝"]

    def run(**options: Any) -> tuple[list[list[float]], list[float]]:
        embeddings = langchain_openai.OpenAIEmbeddings(
            base_url=keyed.api, api_key=GOOD_KEY, model=model, max_retries=0, timeout=TIMEOUT,
            **options,
        )  # fmt: skip
        return embeddings.embed_documents(texts), embeddings.embed_query(texts[0])

    by_ids = await asyncio.to_thread(run)
    sent = keyed.fake.seen[-1].json()
    assert isinstance((sent.get("input") or sent.get("inputs"))[0], str)  # decoded by shim
    as_text = await asyncio.to_thread(run, check_embedding_ctx_length=False)
    for got, want in zip(by_ids[0], as_text[0], strict=True):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert by_ids[1] == pytest.approx(as_text[1], rel=1e-5, abs=1e-6)
    assert by_ids[0][0] != pytest.approx(by_ids[0][1])
