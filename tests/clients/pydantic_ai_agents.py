"""What the pydantic-ai tests share: one tool, one output type, and the fake's script for them."""

from __future__ import annotations

from pydantic import BaseModel

from tests.clients.stack import Stack
from tests.fake_model import ToolModel

ASK = "What is the weather in Paris?"
RESULT = "18 C and sunny in Paris"
FINAL = f"The tool says: {RESULT}"


def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"18 C and sunny in {city}"


class Weather(BaseModel):
    city: str
    temperature_c: int


def arm(stack: Stack) -> ToolModel:
    """Call ``get_weather`` for Paris; answer pydantic-ai's output tool with a Weather."""
    stack.fake.model = ToolModel(
        arguments={
            "get_weather": {"city": "Paris"},
            "final_result": {"city": "Paris", "temperature_c": 21},
        }
    )
    return stack.fake.model
