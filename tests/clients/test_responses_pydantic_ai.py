"""pydantic-ai's default ``openai:`` model, which speaks the Responses API, against shim.

The model is built the way users get it, from the string ``"openai:<model>"`` with
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` in the environment; pydantic-ai sends the whole
history (function_call and function_call_output items) on every request.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic_ai import Agent
from pydantic_ai.models import infer_model
from pydantic_ai.models.openai import OpenAIResponsesModel

from tests.clients.pydantic_ai_agents import ASK, FINAL, Weather, arm, get_weather
from tests.clients.stack import ANSWER, Stack, bounded

pytestmark = pytest.mark.asyncio(loop_scope="module")
MODELS = {"tgi": "tgi", "openai": "vllm"}
#: Tool calls on rendered protocols: test_responses_tools.
TOOL_CALLERS = {"openai": "vllm"}


@pytest.fixture
def openai_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("OPENAI_BASE_URL", stack.api)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    yield stack


async def test_the_default_openai_model_is_the_responses_model(openai_env: Stack) -> None:
    assert isinstance(infer_model("openai:tgi"), OpenAIResponsesModel)


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_plain_run_and_stream(openai_env: Stack, model: str) -> None:
    agent = Agent(f"openai:{model}", instructions="You are terse.")
    result = await agent.run("Say hello.")
    async with agent.run_stream("Say hello.") as streamed:
        text = await streamed.get_output()
    assert result.output == ANSWER
    assert text == ANSWER


@pytest.mark.parametrize("model", TOOL_CALLERS.values(), ids=TOOL_CALLERS.keys())
@bounded()
async def test_tool_round_trip(openai_env: Stack, model: str) -> None:
    arm(openai_env)
    agent = Agent(f"openai:{model}", tools=[get_weather])
    result = await agent.run(ASK)
    assert result.output == FINAL
    kinds = [part.part_kind for message in result.all_messages() for part in message.parts]
    assert kinds.count("tool-call") == 1
    assert kinds.count("tool-return") == 1


@pytest.mark.parametrize("model", TOOL_CALLERS.values(), ids=TOOL_CALLERS.keys())
@bounded()
async def test_structured_output(openai_env: Stack, model: str) -> None:
    """``output_type``: pydantic-ai forces its output tool (a grammar on TGI)."""
    arm(openai_env)
    result = await Agent(f"openai:{model}", output_type=Weather).run("The weather in Paris?")
    assert result.output == Weather(city="Paris", temperature_c=21)
