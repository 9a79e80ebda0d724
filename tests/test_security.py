"""Regressions from a security review of shim; each test fails on the code before its fix."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import app_client
from tests.fake_hf import FakeHF, Reply, sse

# --- request bounds and limits ---

USER = [{"role": "user", "content": "Hi"}]
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def _upstream_calls(fake: FakeHF) -> int:
    return len([s for s in fake.seen if s.method == "POST"])


# `system_fingerprint` is a string in OpenAI's schema: omitted when unknown, never null.


def _sse_payloads(text: str) -> list[Any]:
    return [
        json.loads(line[6:])
        for line in text.split("\n")
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


@pytest.mark.parametrize("model", ["tgi", "pipe"])
async def test_system_fingerprint_is_omitted_when_unknown(fake: FakeHF, model: str) -> None:
    async with app_client(fake) as client:
        chat = await client.post(CHAT, json={"model": model, "messages": USER})
        chat_stream = await client.post(
            CHAT,
            json={
                "model": model,
                "messages": USER,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        completion = await client.post(COMPLETIONS, json={"model": model, "prompt": "p"})
        completion_stream = await client.post(
            COMPLETIONS, json={"model": model, "prompt": "p", "stream": True}
        )
    for r in (chat, chat_stream, completion, completion_stream):
        assert r.status_code == 200, r.text
        assert "system_fingerprint" not in r.text
    # The SDK's own types still parse every shape.
    openai.types.chat.ChatCompletion.model_validate(chat.json())
    for chunk in _sse_payloads(chat_stream.text):
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
    # (Completion stream chunks carry a null `finish_reason`, as OpenAI's do; the SDK builds
    # them without validation.)
    openai.types.Completion.model_validate(completion.json())


async def test_a_null_upstream_system_fingerprint_is_dropped(fake: FakeHF) -> None:
    answer = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "system_fingerprint": None,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    chunk = {**answer, "object": "chat.completion.chunk", "usage": None}
    chunk["choices"] = [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]
    fake.script("/vllm/v1/chat/completions", Reply(json=answer))
    fake.script("/vllm/v1/chat/completions", Reply(chunks=sse(chunk, done=True)))
    async with app_client(fake) as client:
        plain = await client.post(CHAT, json={"model": "vllm", "messages": USER})
        stream = await client.post(CHAT, json={"model": "vllm", "messages": USER, "stream": True})
        # A fingerprint the upstream knows is passed on.
        kept = await client.post(CHAT, json={"model": "vllm", "messages": USER})
    assert plain.status_code == stream.status_code == 200
    assert "system_fingerprint" not in plain.json()
    assert all("system_fingerprint" not in c for c in _sse_payloads(stream.text))
    assert kept.json()["system_fingerprint"] == "fake"
    openai.types.chat.ChatCompletion.model_validate(plain.json())
