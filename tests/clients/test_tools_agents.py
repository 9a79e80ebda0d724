"""The OpenAI Agents SDK (``openai-agents``) against shim: an agent with a ``@function_tool``
through ``OpenAIChatCompletionsModel`` on a ``tgi`` model and on a chatml pipeline, the SDK's own
loop (a call, the tool's result, the final answer), streamed and not.

Tracing is off (``set_tracing_disabled`` and ``OPENAI_AGENTS_DISABLE_TRACING``): the SDK would
otherwise export traces to OpenAI, and nothing may leave loopback.
"""

from __future__ import annotations

import os

os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"

import openai
import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)

from tests.clients.stack import TOOL_MODELS, Stack, bounded
from tests.fake_model import ToolModel

pytestmark = pytest.mark.asyncio(loop_scope="module")
set_tracing_disabled(True)
CALLED: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    CALLED.append(city)
    return f"18 C and sunny in {city}"


def agent(stack: Stack, model: str) -> Agent:
    client = openai.AsyncOpenAI(base_url=stack.api, api_key="sk-unused", max_retries=0)
    return Agent(
        name="weather",
        instructions="You answer weather questions.",
        tools=[get_weather],
        model=OpenAIChatCompletionsModel(model=model, openai_client=client),
        model_settings=ModelSettings(temperature=0),
    )


@pytest.mark.parametrize("stream", [False, True], ids=["run", "streamed"])
@pytest.mark.parametrize("model", TOOL_MODELS.values(), ids=TOOL_MODELS.keys())
@bounded()
async def test_agent_calls_a_function_tool(stack: Stack, model: str, stream: bool) -> None:
    stack.fake.model = ToolModel(arguments={"get_weather": {"city": "Paris"}})
    CALLED.clear()
    if stream:
        run = Runner.run_streamed(agent(stack, model), "What is the weather in Paris?")
        async for _ in run.stream_events():
            pass
        output = run.final_output
    else:
        result = await Runner.run(agent(stack, model), "What is the weather in Paris?")
        output = result.final_output
    assert CALLED == ["Paris"]
    assert output == "The tool says: 18 C and sunny in Paris"
    # Two model turns: the call, then the answer with the tool's result in the prompt.
    assert stack.fake.model.calls == [("get_weather", {"city": "Paris"})]
