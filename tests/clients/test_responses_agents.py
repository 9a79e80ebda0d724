"""The OpenAI Agents SDK with its default model (``OpenAIResponsesModel``: the Responses API)
running an agent with a function tool against shim; tracing off, so nothing leaves loopback.

The model is an OpenAI-speaking upstream (the fake's vLLM) scripted to call the tool, then to
answer from its result, as a tool-calling model would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import agents
import openai
import pytest

from tests.clients.stack import Stack, bounded
from tests.fake_hf import Reply, sse

pytestmark = pytest.mark.asyncio(loop_scope="module")
CHAT = "/vllm/v1/chat/completions"


@pytest.fixture(autouse=True)
def _no_tracing() -> Iterator[None]:
    agents.set_tracing_disabled(True)
    yield


def _answer(message: dict[str, Any], finish: str) -> Reply:
    return Reply(
        json={
            "id": "x", "object": "chat.completion", "created": 1, "model": "served-name",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
        }
    )  # fmt: skip


def _call(city: str) -> dict[str, Any]:
    function = {"name": "get_weather", "arguments": json.dumps({"city": city})}
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": function}]}  # fmt: skip


def _stream(*deltas: dict[str, Any], finish: str) -> Reply:
    base = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return Reply(chunks=sse(*chunks, done=True))


@agents.function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18 C in {city}"


AGENT = agents.Agent(
    name="weather", instructions="Answer briefly.", tools=[get_weather], model="vllm"
)


def _config(stack: Stack) -> agents.RunConfig:
    """The SDK's default provider (its default API: Responses), with shim as its client."""
    client = openai.AsyncOpenAI(base_url=stack.api, api_key="sk-unused", max_retries=0)
    return agents.RunConfig(model_provider=agents.OpenAIProvider(openai_client=client))


@bounded()
async def test_agent_runs_a_function_tool(stack: Stack) -> None:
    stack.fake.script(
        CHAT,
        _answer(_call("Paris"), "tool_calls"),
        _answer({"role": "assistant", "content": "It is 18 C in Paris."}, "stop"),
    )
    result = await agents.Runner.run(
        AGENT, "What is the weather in Paris?", run_config=_config(stack)
    )
    assert result.final_output == "It is 18 C in Paris."
    first, second = (seen.json() for seen in stack.fake.requests(CHAT))
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    # The second turn carried the call and the tool's result back to the model.
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    assert second["messages"][3]["content"] == "18 C in Paris"


@bounded()
async def test_agent_streamed(stack: Stack) -> None:
    start = {"index": 0, "id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
    stack.fake.script(
        CHAT,
        _stream(
            {"role": "assistant", "tool_calls": [start]},
            {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Oslo"}'}}]},
            finish="tool_calls",
        ),
        _stream(
            {"role": "assistant", "content": "It is 18 C"}, {"content": " in Oslo."}, finish="stop"
        ),
    )
    run = agents.Runner.run_streamed(AGENT, "Weather in Oslo?", run_config=_config(stack))
    kinds = [event.type async for event in run.stream_events()]
    assert run.final_output == "It is 18 C in Oslo."
    assert "raw_response_event" in kinds
    *_, call, result = stack.fake.requests(CHAT)[1].json()["messages"]
    assert result == {"role": "tool", "content": "18 C in Oslo",
                      "tool_call_id": call["tool_calls"][0]["id"]}  # fmt: skip
