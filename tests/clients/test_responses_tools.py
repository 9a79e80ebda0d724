"""The Responses API cases that need tool calling on rendered protocols (``tgi``, ``pipeline``):
a function call parsed from the model's text, a choice forced through TGI's grammar, reasoning
from a ``<think>`` block; with openai-python, pydantic-ai's default ``openai:`` model and the
Vercel AI SDK's default ``openai(...)`` model (``node/responses_tools.test.mjs``). Their cases on
an ``openai`` upstream run in ``test_responses_openai_python``, ``test_responses_pydantic_ai``
and ``test_responses_node``. Switched off with the tool-calling tests (``conftest.UNWIRED``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic_ai import Agent

from tests.clients.node_sdk import NODE_TIMEOUT, ensure_node_sdk, run_node_tests
from tests.clients.pydantic_ai_agents import ASK, FINAL, Weather, arm, get_weather
from tests.clients.responses_sdk import (
    PARIS,
    TEXT_EVENTS,
    WEATHER,
    assert_sequenced,
    client,
    collapsed,
    function_call_streamed,
    function_tool_round_trip,
)
from tests.clients.stack import (
    ANSWER,
    GOOD_KEY,
    REASONING,
    REASONING_TOKENS,
    TOOL_MODELS,
    Stack,
    bounded,
)
from tests.fake_model import ToolModel

pytestmark = pytest.mark.asyncio(loop_scope="module")


# --- openai-python ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", TOOL_MODELS.values(), ids=TOOL_MODELS.keys())
@bounded()
async def test_function_tool_round_trip(stack: Stack, model: str) -> None:
    await function_tool_round_trip(stack, model)


@pytest.mark.parametrize("model", TOOL_MODELS.values(), ids=TOOL_MODELS.keys())
@bounded()
async def test_function_call_streamed(stack: Stack, model: str) -> None:
    await function_call_streamed(stack, model)


@bounded()
async def test_forced_function_call_on_tgi(stack: Stack) -> None:
    stack.fake.model = ToolModel(arguments={"get_weather": PARIS})
    async with client(stack) as c:
        response = await c.responses.create(
            model="tgi",
            input="Anything.",
            tools=[WEATHER],
            tool_choice={"type": "function", "name": "get_weather"},
        )
    [item] = response.output
    assert item.type == "function_call"
    assert json.loads(item.arguments) == PARIS
    grammar = stack.fake.requests("/tgi/generate")[0].json()["parameters"]["grammar"]
    assert [b["properties"]["name"]["const"] for b in grammar["value"]["anyOf"]] == ["get_weather"]


@bounded()
async def test_reasoning_item(stack: Stack) -> None:
    """A ``<think>`` block (model ``tgi-think``) is a ``reasoning`` output item before the message,
    streamed as ``response.reasoning_text`` events in its own content part."""
    stack.fake.tokens = list(REASONING_TOKENS)
    async with client(stack) as c:
        response = await c.responses.create(model="tgi-think", input="Say hello.")
        stream = await c.responses.create(model="tgi-think", input="Say hello.", stream=True)
        events = [event async for event in stream]
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output_text == ANSWER
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    texts = [part.text for part in [*(reasoning.content or []), *reasoning.summary]]
    assert REASONING in texts
    assert collapsed(events) == [
        *TEXT_EVENTS[:3],
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        *TEXT_EVENTS[2:],
    ]
    assert_sequenced(events)
    streamed = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert streamed == REASONING
    assert events[-1].response.output_text == ANSWER


# --- pydantic-ai's default openai: model on tgi ---------------------------------------------------


@pytest.fixture
def openai_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("OPENAI_BASE_URL", stack.api)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    yield stack


@bounded()
async def test_pydantic_ai_tool_round_trip(openai_env: Stack) -> None:
    arm(openai_env)
    result = await Agent("openai:tgi", tools=[get_weather]).run(ASK)
    assert result.output == FINAL
    kinds = [part.part_kind for message in result.all_messages() for part in message.parts]
    assert kinds.count("tool-call") == 1
    assert kinds.count("tool-return") == 1


@bounded()
async def test_pydantic_ai_structured_output(openai_env: Stack) -> None:
    """``output_type``: pydantic-ai forces its output tool (a grammar on TGI)."""
    arm(openai_env)
    result = await Agent("openai:tgi", output_type=Weather).run("The weather in Paris?")
    assert result.output == Weather(city="Paris", temperature_c=21)


# --- the Vercel AI SDK's default openai(...) model: tool round trips on tgi and pipe-chatml -------


@pytest.fixture(scope="module")
def node() -> str:
    return ensure_node_sdk()


@bounded(NODE_TIMEOUT + 10)
async def test_ai_sdk_tool_round_trips(node: str, keyed: Stack) -> None:
    keyed.fake.model = ToolModel(arguments={"get_weather": PARIS})
    await run_node_tests(node, "responses_tools.test.mjs", base_url=keyed.api, api_key=GOOD_KEY)
