"""What the Responses API tests with openai-python share: the client, the upstream's view of
a request, the event sequences (openai-python ``types/responses``: ``ResponseStreamEvent``) and
the function-call cases, run on an ``openai`` upstream here and on rendered protocols once tool
calling is wired there (``test_responses_tools``)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import openai
from openai.types.responses import FunctionToolParam

from tests.clients.stack import Stack
from tests.fake_model import ToolModel

TIMEOUT = 10.0
UPSTREAM = {"tgi": "/tgi/generate", "pipe": "/pipe", "pipe-chatml": "/pipe-chatml",
            "vllm": "/vllm/v1/chat/completions"}  # fmt: skip
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
PARIS = {"city": "Paris"}
#: A text answer's events, each delta run collapsed to one.
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
CALL_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


def client(stack: Stack, key: str = "sk-unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.api, api_key=key, max_retries=0, timeout=TIMEOUT)


def prompt(stack: Stack, model: str, call: int = 0) -> str:
    """What the upstream was asked on its ``call``-th request (rendered prompt or messages)."""
    body = stack.fake.requests(UPSTREAM[model])[call].json()
    return body["inputs"] if "inputs" in body else json.dumps(body["messages"])


def collapsed(events: list[Any]) -> list[str]:
    return [kind for kind, _ in itertools.groupby(e.type for e in events)]


def assert_sequenced(events: list[Any]) -> None:
    numbers = [e.sequence_number for e in events]
    assert all(a < b for a, b in itertools.pairwise(numbers)), numbers


# --- function tools -------------------------------------------------------------------------------


async def function_tool_round_trip(stack: Stack, model: str) -> None:
    """A function call, its output sent back with ``previous_response_id``, the answer."""
    stack.fake.model = ToolModel(arguments={"get_weather": PARIS})
    async with client(stack) as c:
        first = await c.responses.create(
            model=model, input="What is the weather in Paris?", tools=[WEATHER]
        )
        calls = [item for item in first.output if item.type == "function_call"]
        assert len(calls) == 1, first.output
        [call] = calls
        second = await c.responses.create(
            model=model,
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C"}],
            tools=[WEATHER],
        )
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == PARIS
    assert call.call_id
    assert call.id
    assert first.output_text == ""
    assert first.status == "completed"
    assert second.output_text == "The tool says: 18 C"
    assert [item.type for item in second.output] == ["message"]
    # The second call carried the question, the call and its result.
    asked = prompt(stack, model, 1)
    assert "What is the weather in Paris?" in asked
    assert "get_weather" in asked
    assert "18 C" in asked


async def function_call_streamed(stack: Stack, model: str) -> None:
    """A function call streamed: its item, its argument deltas, the final response."""
    stack.fake.model = ToolModel(arguments={"get_weather": PARIS})
    async with client(stack) as c:
        stream = await c.responses.create(
            model=model, input="What is the weather in Paris?", tools=[WEATHER], stream=True
        )
        events = [event async for event in stream]
    assert collapsed(events) == CALL_EVENTS
    assert_sequenced(events)
    added = events[2]
    assert added.item.type == "function_call"
    assert added.item.name == "get_weather"
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    [done] = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads("".join(e.delta for e in deltas)) == PARIS
    assert done.arguments == "".join(e.delta for e in deltas)
    assert {e.item_id for e in [*deltas, done]} == {added.item.id}
    final = events[-1].response
    [item] = final.output
    assert item.type == "function_call"
    assert json.loads(item.arguments) == PARIS
