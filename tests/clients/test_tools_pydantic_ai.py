"""pydantic-ai's chat-completions model (``openai-chat:``) calling tools through shim."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic_ai import Agent

from tests.clients.pydantic_ai_agents import ASK, FINAL, Weather, arm, get_weather
from tests.clients.stack import TOOL_MODELS, Stack, bounded

pytestmark = pytest.mark.asyncio(loop_scope="module")
MODELS = {**TOOL_MODELS, "openai": "vllm"}


@pytest.fixture
def openai_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("OPENAI_BASE_URL", stack.api)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    yield stack


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_tool_round_trip(openai_env: Stack, model: str) -> None:
    arm(openai_env)
    agent = Agent(f"openai-chat:{model}", tools=[get_weather])
    result = await agent.run(ASK)
    async with agent.run_stream(ASK) as streamed:
        text = await streamed.get_output()
    assert result.output == FINAL
    assert text == FINAL


@pytest.mark.parametrize("model", ["tgi", "vllm"])
@bounded()
async def test_structured_output(openai_env: Stack, model: str) -> None:
    arm(openai_env)
    result = await Agent(f"openai-chat:{model}", output_type=Weather).run("The weather in Paris?")
    assert result.output == Weather(city="Paris", temperature_c=21)
