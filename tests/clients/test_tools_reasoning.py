"""Reasoning with the openai Python SDK: a model's ``<think>`` block becomes
``message.reasoning_content`` (vLLM's and DeepSeek's field; openai-python keeps it as an extra
field), never part of ``content``; streamed as ``delta.reasoning_content``.

The model is ``tgi-think``, whose template shows ``</think>`` (so ``reasoning_parser = "auto"``
picks the think parser); the fake answers ``REASONING_TOKENS``, the markup split across tokens.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.clients.stack import ANSWER, REASONING, REASONING_TOKENS, Stack, bounded

pytestmark = pytest.mark.asyncio(loop_scope="module")
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


def client(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.api, api_key="sk-unused", max_retries=0, timeout=10)


def extra(model: Any, name: str) -> Any:
    return (model.model_extra or {}).get(name)


@bounded()
async def test_reasoning_content(stack: Stack) -> None:
    stack.fake.tokens = list(REASONING_TOKENS)
    async with client(stack) as c:
        completion = await c.chat.completions.create(model="tgi-think", messages=MESSAGES)
    message = completion.choices[0].message
    assert message.content == ANSWER
    assert extra(message, "reasoning_content") == REASONING
    assert completion.choices[0].finish_reason == "stop"


@bounded()
async def test_reasoning_content_streamed(stack: Stack) -> None:
    stack.fake.tokens = list(REASONING_TOKENS)
    async with client(stack) as c:
        stream = await c.chat.completions.create(model="tgi-think", messages=MESSAGES, stream=True)
        deltas = [chunk.choices[0].delta async for chunk in stream if chunk.choices]
    content = "".join(d.content or "" for d in deltas)
    reasoning = "".join(extra(d, "reasoning_content") or "" for d in deltas)
    assert content == ANSWER
    assert reasoning == REASONING
    assert not any("think>" in (d.content or "") for d in deltas)
