"""An OpenAI-speaking upstream's chat answer read as neutral results (``openai_answer``)."""

from __future__ import annotations

from typing import Any

import pytest

from shim.adapters._result import (
    ReasoningPiece,
    TextPiece,
    ToolCall,
    ToolCallArguments,
    ToolCallStart,
)
from shim.adapters.openai_answer import ChunkReader, generation_of
from shim.errors import UpstreamError


def answer(message: dict[str, Any], finish: str | None = "stop") -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_whole_answer() -> None:
    call = {"id": 7, "function": {"name": "f", "arguments": {"a": 1}}}
    data = answer({"content": "", "tool_calls": [call], "reasoning_content": "hm"})
    data["usage"] = {"prompt_tokens": 3, "completion_tokens": 2}
    generation = generation_of(data)
    # TGI < 3.2's object arguments are repaired; `stop` with calls becomes `tool_calls`.
    assert generation.tool_calls == [ToolCall("f", '{"a":1}')]
    assert generation.finish_reason == "tool_calls"
    assert generation.reasoning == "hm"
    assert (generation.prompt_tokens, generation.completion_tokens) == (3, 2)


@pytest.mark.parametrize(
    "data",
    [
        {"choices": []},
        {"error": {"message": "boom"}},
        answer({"content": 3}),
        answer({"tool_calls": [{"function": {"arguments": "{}"}}]}),
    ],
    ids=["no-choice", "error", "content-not-text", "call-without-name"],
)
def test_whole_answer_refused(data: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError):
        generation_of(data)


def test_chunks_become_pieces() -> None:
    reader = ChunkReader()
    start = {"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}
    pieces = [
        *reader.feed(chunk({"role": "assistant", "reasoning": "think"})),
        *reader.feed(chunk({"content": "Hi"})),
        *reader.feed(chunk({"tool_calls": [start]})),
        *reader.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})),
        *reader.feed(chunk({"tool_calls": [{"index": 3, "function": {"name": "g"}}]})),
        *reader.feed(chunk({}, "tool_calls")),
        *reader.feed({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}),
    ]
    assert pieces == [
        ReasoningPiece("think"),
        TextPiece("Hi"),
        ToolCallStart(0, "f"),
        ToolCallArguments(0, "{}"),
        ToolCallStart(1, "g"),
    ]
    assert reader.finish_reason == "tool_calls"
    assert reader.usage == (1, 2)


@pytest.mark.parametrize(
    "data",
    [
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        {"error": "overloaded"},
    ],
    ids=["call-without-name", "error-event"],
)
def test_chunks_refused(data: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError):
        ChunkReader().feed(data)
