"""The official openai Python SDK (sync and async) against shim over real sockets.

The upstream is ``FakeHF`` on another loopback port; shim uses its real aiohttp transport.
Every assertion is on what the SDK itself returns or raises.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from pydantic import BaseModel

from tests.clients.stack import (
    ANSWER,
    CHAT_MODELS,
    GOOD_KEY,
    LIMITED_KEY,
    PIPELINE_EMBED_MODEL,
    ROUTER_MODEL,
    TGI_ONLY_KEY,
    Stack,
    bounded,
)
from tests.fake_hf import TOKENS, Reply, sse, tgi_stream_events

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]
TIMEOUT = 10.0
pytestmark = pytest.mark.asyncio(loop_scope="module")
EMBED_MODELS = ["embed", PIPELINE_EMBED_MODEL, "oai-embed"]


def async_client(stack: Stack, key: str = "sk-unused", **options: Any) -> openai.AsyncOpenAI:
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", TIMEOUT)
    return openai.AsyncOpenAI(base_url=stack.api, api_key=key, **options)


def sync_client(stack: Stack, key: str = "sk-unused", **options: Any) -> openai.OpenAI:
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", TIMEOUT)
    return openai.OpenAI(base_url=stack.api, api_key=key, **options)


# --- chat, every protocol ----------------------------------------------------------------------


@pytest.mark.parametrize("model", CHAT_MODELS.values(), ids=CHAT_MODELS.keys())
@bounded()
async def test_chat_non_stream(stack: Stack, model: str) -> None:
    async with async_client(stack) as client:
        completion = await client.chat.completions.create(model=model, messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == model
    assert completion.id.startswith("chatcmpl-")
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == ANSWER
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("model", CHAT_MODELS.values(), ids=CHAT_MODELS.keys())
@bounded()
async def test_chat_stream_with_usage(stack: Stack, model: str) -> None:
    async with async_client(stack) as client:
        stream = await client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert len(chunks) >= 3
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    # One id and one `created` for the whole stream; every chunk names the public model.
    assert len({c.id for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1
    assert {c.model for c in chunks} == {model}
    # The first delta carries the role; the last choice chunk the finish reason.
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert all(f is None for f in finishes[:-1])
    # include_usage: one final chunk with no choices and the usage; none before it.
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


@bounded()
async def test_chat_stream_without_usage_has_no_usage_chunk(stack: Stack) -> None:
    async with async_client(stack) as client:
        stream = await client.chat.completions.create(model="tgi", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER


# --- SDK helpers: the stream accumulator, structured outputs, logprobs, tools -----------------


@pytest.mark.parametrize("model", ["tgi", "pipe", "vllm"])
@bounded()
async def test_stream_helper_accumulates(stack: Stack, model: str) -> None:
    """``chat.completions.stream()`` rebuilds the message from deltas (strict on chunk shape)."""
    async with (
        async_client(stack) as client,
        client.chat.completions.stream(
            model=model, messages=MESSAGES, stream_options={"include_usage": True}
        ) as stream,
    ):
        deltas = [e.delta async for e in stream if e.type == "content.delta"]
        final = await stream.get_final_completion()
    assert "".join(deltas) == ANSWER
    assert final.choices[0].message.content == ANSWER
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None


@bounded()
async def test_stream_helper_with_old_tgi_chunks(stack: Stack) -> None:
    """TGI 2.0's Messages API: ``data:{`` framing, ``"object": "text_completion"`` chunks,
    ``eos_token``, no ``[DONE]``. The SDK's helper drops chunks not named
    ``chat.completion.chunk``, so shim must name them."""
    base = {
        "id": "",
        "object": "text_completion",
        "created": 5,
        "model": "tgi",
        "system_fingerprint": "2.0.4-native",
    }
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": token},
                              "logprobs": None, "finish_reason": None}]}
        for token in TOKENS
    ]  # fmt: skip
    events.append(
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                              "logprobs": None, "finish_reason": "eos_token"}]}
    )  # fmt: skip
    stack.fake.script("/vllm/v1/chat/completions", Reply(chunks=sse(*events, space=False)))
    async with (
        async_client(stack) as client,
        client.chat.completions.stream(model="vllm", messages=MESSAGES) as stream,
    ):
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == ANSWER
    assert final.choices[0].finish_reason == "stop"
    assert final.id.startswith("chatcmpl-")


class Weather(BaseModel):
    city: str
    temperature_c: int


@bounded()
async def test_structured_output_parse_on_tgi(stack: Stack) -> None:
    """``.parse(response_format=Model)``: shim turns the JSON schema into TGI's grammar."""
    stack.fake.tokens = ['{"city": "Paris", ', '"temperature_c": 21}']
    async with async_client(stack) as client:
        completion = await client.chat.completions.parse(
            model="tgi", messages=MESSAGES, response_format=Weather
        )
    parsed = completion.choices[0].message.parsed
    assert parsed == Weather(city="Paris", temperature_c=21)
    grammar = stack.fake.requests("/tgi/generate")[0].json()["parameters"]["grammar"]
    assert grammar["type"] == "json"
    assert set(grammar["value"]["properties"]) == {"city", "temperature_c"}


@bounded()
async def test_logprobs_on_tgi(stack: Stack) -> None:
    async with async_client(stack) as client:
        completion = await client.chat.completions.create(
            model="tgi", messages=MESSAGES, logprobs=True, top_logprobs=1
        )
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert "".join(t.token for t in logprobs.content) == ANSWER
    assert all(t.logprob <= 0 for t in logprobs.content)
    assert all(len(t.top_logprobs) == 1 for t in logprobs.content)


TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            # openai < 3 lets the stream helper take only strict tools.
            "strict": True,
        },
    }
]


def _tool_call_events() -> list[bytes]:
    base = {"id": "up-1", "object": "chat.completion.chunk", "created": 5, "model": "served-name"}
    call = {"index": 0, "id": "call_1", "type": "function"}
    deltas = [
        {
            "role": "assistant",
            "tool_calls": [{**call, "function": {"name": "get_weather", "arguments": ""}}],
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
    ]
    events = [
        {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
        for d in deltas
    ]
    events.append(
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}],
        }
    )
    return sse(*events, done=True)


@bounded()
async def test_tool_calls_through_openai_upstream(stack: Stack) -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
    ]}  # fmt: skip
    stack.fake.script(
        "/vllm/v1/chat/completions",
        Reply(json={"id": "up-0", "object": "chat.completion", "created": 5, "model": "served-name",
                    "choices": [{"index": 0, "message": message, "logprobs": None,
                                 "finish_reason": "tool_calls"}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}}),
        Reply(chunks=_tool_call_events()),
    )  # fmt: skip
    async with async_client(stack) as client:
        completion = await client.chat.completions.create(
            model="vllm", messages=MESSAGES, tools=TOOLS
        )
        async with client.chat.completions.stream(
            model="vllm", messages=MESSAGES, tools=TOOLS
        ) as stream:
            final = await stream.get_final_completion()
    for got in (completion, final):
        choice = got.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls is not None
        [call] = choice.message.tool_calls
        assert call.type == "function"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert final.model == "vllm"
    # The helper parsed the arguments it accumulated from the deltas (strict tool).
    [streamed_call] = final.choices[0].message.tool_calls or []
    assert streamed_call.function.parsed_arguments == {"city": "Paris"}
    sent = stack.fake.requests("/vllm/v1/chat/completions")[0].json()
    assert sent["model"] == "served-name"
    assert sent["tools"] == TOOLS


# --- completions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["tgi", "pipe", "vllm", ROUTER_MODEL])
@bounded()
async def test_completions(stack: Stack, model: str) -> None:
    async with async_client(stack) as client:
        completion = await client.completions.create(model=model, prompt="Once upon", max_tokens=8)
        assert completion.object == "text_completion"
        assert completion.model == model
        assert completion.choices[0].text == ANSWER
        assert completion.usage is not None
        stream = await client.completions.create(
            model=model, prompt="Once upon", max_tokens=8, stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == ANSWER
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices[0].finish_reason == "stop"


# --- embeddings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", EMBED_MODELS)
@bounded()
async def test_embeddings_base64_default_and_float(stack: Stack, model: str) -> None:
    inputs = ["The food was delicious.", "The waiter was friendly.", "x"]
    async with async_client(stack) as client:
        # The SDK asks for base64 by default and decodes the float32 bytes itself.
        raw = await client.embeddings.with_raw_response.create(model=model, input=inputs)
        assert raw.http_request.read().find(b'"encoding_format":"base64"') != -1
        wire = raw.http_response.json()
        assert all(isinstance(item["embedding"], str) for item in wire["data"])
        decoded = raw.parse()
        floats = await client.embeddings.create(model=model, input=inputs, encoding_format="float")
        single = await client.embeddings.create(model=model, input=inputs[0])
    assert decoded.model == floats.model == model
    assert [d.index for d in decoded.data] == [0, 1, 2]
    for a, b in zip(decoded.data, floats.data, strict=True):
        assert len(a.embedding) == len(b.embedding) > 0
        # float32 on the wire: equal within its precision, not bit for bit.
        assert a.embedding == pytest.approx(b.embedding, rel=1e-6, abs=1e-7)
    # Different texts, different vectors; each is unit length (normalised).
    assert decoded.data[0].embedding != pytest.approx(decoded.data[1].embedding)
    for item in floats.data:
        assert math.fsum(x * x for x in item.embedding) == pytest.approx(1.0, rel=1e-5)
    assert single.data[0].embedding == pytest.approx(decoded.data[0].embedding, rel=1e-6, abs=1e-7)
    assert floats.usage.prompt_tokens > 0
    assert floats.usage.total_tokens == floats.usage.prompt_tokens


# --- models --------------------------------------------------------------------------------------


@bounded()
async def test_models_list_and_retrieve(stack: Stack) -> None:
    async with async_client(stack) as client:
        page = await client.models.list()
        ids = [m.id async for m in page]
        # Ids with a "/" are percent-encoded into one path segment by the SDK.
        router = await client.models.retrieve(ROUTER_MODEL)
        embed = await client.models.retrieve(PIPELINE_EMBED_MODEL)
        plain = await client.models.retrieve("tgi")
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("no/such-model")
    assert set(ids) >= {*CHAT_MODELS.values(), *EMBED_MODELS}
    assert router.id == ROUTER_MODEL
    assert router.object == "model"
    assert router.owned_by == "meta-llama"
    assert embed.id == PIPELINE_EMBED_MODEL
    assert plain.id == "tgi"
    assert missing.value.code == "model_not_found"


# --- headers -------------------------------------------------------------------------------------


@bounded()
async def test_raw_response_headers(stack: Stack) -> None:
    async with async_client(stack) as client:
        raw = await client.chat.completions.with_raw_response.create(model="tgi", messages=MESSAGES)
        mine = await client.chat.completions.with_raw_response.create(
            model="tgi", messages=MESSAGES, extra_headers={"x-request-id": "client-chosen-id"}
        )
        with pytest.raises(openai.NotFoundError) as failed:
            await client.chat.completions.create(model="nope", messages=MESSAGES)
    assert raw.status_code == 200
    request_id = raw.headers["x-request-id"]
    assert len(request_id) >= 16
    assert raw.request_id == request_id
    overhead = float(raw.headers["x-shim-overhead-ms"])
    assert 0 <= overhead < 1000
    assert raw.parse().choices[0].message.content == ANSWER
    # A client's own request id is kept (and reaches the SDK's error objects too).
    assert mine.headers["x-request-id"] == "client-chosen-id"
    assert failed.value.request_id
    assert failed.value.response.headers["x-shim-overhead-ms"]


# --- errors: the SDK's typed exceptions ------------------------------------------------------


@bounded()
async def test_400_bad_parameter(stack: Stack) -> None:
    async with async_client(stack) as client:
        with pytest.raises(openai.BadRequestError) as too_many:
            await client.chat.completions.create(model="tgi", messages=MESSAGES, n=99)
        with pytest.raises(openai.BadRequestError) as wrong_type:
            await client.chat.completions.create(
                model="tgi",
                messages=MESSAGES,
                extra_body={"temperature": "hot"},
            )
        with pytest.raises(openai.BadRequestError) as empty:
            await client.embeddings.create(model="embed", input="")
    assert too_many.value.status_code == 400
    assert too_many.value.type == "invalid_request_error"
    assert too_many.value.param == "n"
    assert "at most 8" in too_many.value.body["message"]  # type: ignore[index]
    assert wrong_type.value.param == "temperature"
    assert empty.value.param == "input"
    assert stack.upstream_calls("/tgi/generate") == 0


@bounded()
async def test_401_wrong_key(keyed: Stack) -> None:
    async with async_client(keyed, "sk-wrong", max_retries=2) as client:
        with pytest.raises(openai.AuthenticationError) as wrong:
            await client.chat.completions.create(model="tgi", messages=MESSAGES)
        with pytest.raises(openai.AuthenticationError) as listing:
            await client.models.list()
    assert wrong.value.status_code == 401
    assert wrong.value.code == "invalid_api_key"
    assert wrong.value.body["message"] == "Incorrect API key provided."  # type: ignore[index]
    assert wrong.value.response.headers["www-authenticate"] == "Bearer"
    assert listing.value.code == "invalid_api_key"
    assert keyed.upstream_calls("/tgi/generate") == 0
    # The right key works.
    async with async_client(keyed, GOOD_KEY) as client:
        completion = await client.chat.completions.create(model="tgi", messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER


@bounded()
async def test_key_restricted_to_other_models_sees_them_as_missing(keyed: Stack) -> None:
    async with async_client(keyed, TGI_ONLY_KEY) as client:
        allowed = await client.chat.completions.create(model="tgi", messages=MESSAGES)
        with pytest.raises(openai.NotFoundError) as denied:
            await client.chat.completions.create(model="vllm", messages=MESSAGES)
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(model="no-such-model", messages=MESSAGES)
        visible = [m.id async for m in await client.models.list()]
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("vllm")
    assert allowed.choices[0].message.content == ANSWER
    # A model the key may not use answers as one that does not exist.
    assert denied.value.status_code == missing.value.status_code == 404
    assert denied.value.code == missing.value.code == "model_not_found"
    assert denied.value.param == "model"
    assert denied.value.body["message"] == missing.value.body["message"].replace(
        "no-such-model", "vllm"
    )  # type: ignore[index]
    assert visible == ["tgi"]
    assert keyed.upstream_calls("/vllm/v1/chat/completions") == 0


@bounded()
async def test_404_unknown_model(stack: Stack) -> None:
    async with async_client(stack) as client:
        with pytest.raises(openai.NotFoundError) as chat:
            await client.chat.completions.create(model="gpt-99", messages=MESSAGES)
        with pytest.raises(openai.NotFoundError) as embeddings:
            await client.embeddings.create(model="gpt-99-embed", input="hi")
    assert chat.value.status_code == 404
    assert chat.value.code == "model_not_found"
    assert chat.value.param == "model"
    assert chat.value.body["message"] == (  # type: ignore[index]
        "The model `gpt-99` does not exist or you do not have access to it."
    )
    assert embeddings.value.code == "model_not_found"


@bounded()
async def test_429_per_key_rpm(keyed: Stack) -> None:
    # max_retries=0: the SDK would otherwise sleep out the Retry-After (up to a minute) and retry.
    async with async_client(keyed, LIMITED_KEY) as client:
        first = await client.chat.completions.create(model="tgi", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="tgi", messages=MESSAGES)
    assert first.choices[0].message.content == ANSWER
    assert limited.value.status_code == 429
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.type == "rate_limit_error"
    assert "1 requests per minute" in limited.value.body["message"]  # type: ignore[index]
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    assert keyed.upstream_calls("/tgi/generate") == 1


@bounded()
async def test_5xx_upstream_failing(stack: Stack) -> None:
    stack.fake.script(
        "/tgi/generate",
        Reply(500, json={"error": "CUDA out of memory", "error_type": "generation"}),
    )
    async with async_client(stack) as client:
        with pytest.raises(openai.InternalServerError) as failed:
            await client.chat.completions.create(model="tgi", messages=MESSAGES)
    assert failed.value.status_code == 502
    assert failed.value.code == "upstream_error"
    assert failed.value.type == "server_error"
    assert "CUDA out of memory" in failed.value.body["message"]  # type: ignore[index]


@bounded()
async def test_timeout_is_not_retried_by_the_sdk(stack: Stack) -> None:
    """shim's 504 says ``x-should-retry: false``: the SDK must not multiply a slow upstream."""
    stack.fake.script("/slow/generate", Reply(hang=1.0, json={"generated_text": "late"}))
    async with async_client(stack, max_retries=2) as client:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as failed:
            await client.chat.completions.create(model="slow", messages=MESSAGES)
    assert failed.value.status_code == 504
    assert failed.value.code == "upstream_timeout"
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert stack.upstream_calls("/slow/generate") == 1
    assert time.monotonic() - started < 2.0


@bounded()
async def test_error_inside_a_stream_raises(stack: Stack) -> None:
    """An upstream error after the 200 reaches the SDK as an APIError with its message."""
    first = {"index": 1, "token": {"id": 1, "text": "Hel", "logprob": -0.1, "special": False}}
    stack.fake.script(
        "/tgi/generate_stream",
        Reply(
            chunks=sse(
                first, {"error": "Request failed during generation", "error_type": "generation"}
            )
        ),
    )
    async with async_client(stack) as client:
        stream = await client.chat.completions.create(model="tgi", messages=MESSAGES, stream=True)
        got = ""
        with pytest.raises(openai.APIError) as failed:
            async for chunk in stream:
                got += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    assert got == "Hel"
    assert "Request failed during generation" in failed.value.message


@bounded()
async def test_closing_a_stream_early_stops_the_upstream(stack: Stack) -> None:
    """A client that stops reading (``stream.close()``) must not leave the upstream generating."""
    events = sse(*tgi_stream_events(["tok"] * 50), space=False)
    stack.fake.script("/tgi/generate_stream", Reply(chunks=events, delay=0.05))
    async with async_client(stack) as client:
        stream = await client.chat.completions.create(model="tgi", messages=MESSAGES, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()
        for _ in range(100):
            if stack.fake.closed_early:
                break
            await asyncio.sleep(0.02)
    assert stack.fake.closed_early == 1
    assert stack.fake.open_streams == 0


# --- the SDK's own retry on "loading" ---------------------------------------------------------

LOADING = Reply(
    503, json={"error": "Model fake/loading is currently loading", "estimated_time": 1.0}
)


@bounded()
async def test_sdk_retries_loading_503_async(stack: Stack) -> None:
    stack.fake.script("/loading/generate", LOADING)
    async with async_client(stack, max_retries=2) as client:
        started = time.monotonic()
        raw = await client.chat.completions.with_raw_response.create(
            model="loading", messages=MESSAGES
        )
        elapsed = time.monotonic() - started
    assert raw.parse().choices[0].message.content == ANSWER
    assert raw.retries_taken == 1
    # shim answered 503 at once, the SDK waited out Retry-After: 1, then asked again.
    assert stack.upstream_calls("/loading/generate") == 2
    assert 0.9 <= elapsed < 5.0


@bounded()
async def test_sdk_retries_loading_503_sync_stream(stack: Stack) -> None:
    stack.fake.script("/loading/generate_stream", LOADING)

    def run() -> str:
        with sync_client(stack, max_retries=2) as client:
            stream = client.chat.completions.create(model="loading", messages=MESSAGES, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert await asyncio.to_thread(run) == ANSWER
    assert stack.upstream_calls("/loading/generate_stream") == 2


@bounded()
async def test_loading_without_sdk_retries_is_503_with_retry_after(stack: Stack) -> None:
    stack.fake.script("/loading/generate", LOADING)
    async with async_client(stack) as client:
        with pytest.raises(openai.InternalServerError) as loading:
            await client.chat.completions.create(model="loading", messages=MESSAGES)
    assert loading.value.status_code == 503
    assert loading.value.code == "model_loading"
    assert loading.value.response.headers["retry-after"] == "1"
    assert "currently loading" in loading.value.body["message"]  # type: ignore[index]


# --- the sync client -----------------------------------------------------------------------------


@bounded()
async def test_sync_client_end_to_end(stack: Stack) -> None:
    def run() -> dict[str, Any]:
        with sync_client(stack) as client:
            chat = client.chat.completions.create(model="tgi", messages=MESSAGES)
            stream = client.chat.completions.create(
                model="vllm",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = list(stream)
            completion = client.completions.create(model="pipe", prompt="Once upon")
            vectors = client.embeddings.create(model="embed", input=["a", "bb"])
            floats = client.embeddings.create(
                model="embed", input=["a", "bb"], encoding_format="float"
            )
            models = [m.id for m in client.models.list()]
            router = client.models.retrieve(ROUTER_MODEL)
            try:
                client.chat.completions.create(model="missing", messages=MESSAGES)
                missing_code = None
            except openai.NotFoundError as exc:
                missing_code = exc.code
        return {
            "chat": chat.choices[0].message.content,
            "stream": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
            "usage": chunks[-1].usage,
            "completion": completion.choices[0].text,
            "vectors": [d.embedding for d in vectors.data],
            "floats": [d.embedding for d in floats.data],
            "models": models,
            "router": router.id,
            "missing": missing_code,
        }

    got = await asyncio.to_thread(run)
    assert got["chat"] == got["stream"] == got["completion"] == ANSWER
    assert got["usage"] is not None
    assert got["usage"].total_tokens > 0
    assert len(got["vectors"]) == 2
    for a, b in zip(got["vectors"], got["floats"], strict=True):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-7)
    assert ROUTER_MODEL in got["models"]
    assert got["router"] == ROUTER_MODEL
    assert got["missing"] == "model_not_found"
