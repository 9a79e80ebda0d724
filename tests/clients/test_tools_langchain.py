"""Tool calling with LangChain's OpenAI integration (``langchain-openai``) against shim.

``langchain`` itself (``create_agent``) is not installed with the rest, so the agent loop is
LangChain's documented manual one: ``bind_tools``, run each ``tool_call``, send ``ToolMessage``s.
"""

from __future__ import annotations

from typing import Any

import langchain_openai
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from tests.clients.stack import GOOD_KEY, TOOL_MODELS, Stack, bounded
from tests.fake_model import ToolModel

pytestmark = pytest.mark.asyncio(loop_scope="module")
TIMEOUT = 10.0
MODELS = {**TOOL_MODELS, "openai": "vllm"}
ASK = "What is the weather in Paris?"


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"18 C and sunny in {city}"


@tool
def get_time(tz: str) -> str:
    """The time in a time zone."""
    return f"12:00 in {tz}"


class Weather(BaseModel):
    """The weather report for a city."""

    city: str
    temperature_c: int


def chat_model(stack: Stack, model: str) -> Any:
    return langchain_openai.ChatOpenAI(
        base_url=stack.api, api_key=GOOD_KEY, model=model, max_retries=0, timeout=TIMEOUT
    )


def arm(stack: Stack, **script: Any) -> None:
    stack.fake.model = ToolModel(**script)


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_bind_tools_auto(keyed: Stack, model: str) -> None:
    arm(keyed, arguments={"get_weather": {"city": "Paris"}})
    llm = chat_model(keyed, model).bind_tools([get_weather, get_time])
    message = await llm.ainvoke(ASK)
    merged = None
    async for chunk in llm.astream(ASK):
        merged = chunk if merged is None else merged + chunk
    for got in (message, merged):
        assert isinstance(got, AIMessage)
        assert [(c["name"], c["args"]) for c in got.tool_calls] == [
            ("get_weather", {"city": "Paris"})
        ]
        assert got.tool_calls[0]["id"]
        assert not got.content
    assert message.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("model", ["tgi", "vllm"])
@bounded()
async def test_bind_tools_named(keyed: Stack, model: str) -> None:
    arm(keyed, arguments={"get_time": {"tz": "UTC"}})
    llm = chat_model(keyed, model).bind_tools([get_weather, get_time], tool_choice="get_time")
    message = await llm.ainvoke(ASK)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_time", {"tz": "UTC"})]


@pytest.mark.parametrize("model", ["tgi", "vllm"])
@bounded()
async def test_structured_output_function_calling(keyed: Stack, model: str) -> None:
    arm(keyed, arguments={"Weather": {"city": "Paris", "temperature_c": 21}})
    llm = chat_model(keyed, model).with_structured_output(Weather, method="function_calling")
    assert await llm.ainvoke("The weather in Paris?") == Weather(city="Paris", temperature_c=21)


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_tool_loop(keyed: Stack, model: str) -> None:
    arm(keyed, arguments={"get_weather": {"city": "Paris"}})
    tools = {t.name: t for t in (get_weather, get_time)}
    llm = chat_model(keyed, model).bind_tools(list(tools.values()))
    messages: list[BaseMessage] = [HumanMessage(ASK)]
    for _ in range(3):  # bounded: call, result, answer
        reply = await llm.ainvoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        messages += [await tools[call["name"]].ainvoke(call) for call in reply.tool_calls]
    assert [type(m).__name__ for m in messages] == [
        "HumanMessage", "AIMessage", "ToolMessage", "AIMessage",
    ]  # fmt: skip
    assert messages[-1].content == "The tool says: 18 C and sunny in Paris"
