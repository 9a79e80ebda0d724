"""A chat answer from an OpenAI-speaking upstream read as neutral results (pure): the whole
answer as a ``Generation``, stream chunks as ``Piece``s, so the Responses API builds its
output from them as it does from a model's parsed text.

Fields follow OpenAI's ``ChatCompletion`` / ``ChatCompletionChunk``: ``message.tool_calls``
and ``delta.tool_calls`` (``index``, ``function.name`` first, then ``function.arguments`` in
pieces); the reasoning is vLLM's ``reasoning_content`` (``reasoning`` in vLLM >= 0.10).
"""

from __future__ import annotations

from typing import Any

from shim.adapters import openai_compat
from shim.adapters._result import (
    Generation,
    Piece,
    ReasoningPiece,
    TextPiece,
    ToolCall,
    ToolCallArguments,
    ToolCallStart,
)
from shim.errors import invalid_response


def _reasoning(message: dict[str, Any]) -> str:
    text = message.get("reasoning_content") or message.get("reasoning")
    return text if isinstance(text, str) else ""


def _function(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    return function if isinstance(function, dict) else {}


def generation_of(data: dict[str, Any]) -> Generation:
    """The first choice of a whole chat answer, with its usage when reported."""
    openai_compat.checked_chat(data, stream=False)
    choices = data["choices"]
    if not choices:
        raise invalid_response("no choice in the upstream answer")
    choice = choices[0]
    message = choice["message"]
    calls = []
    for call in message.get("tool_calls") or ():
        function = _function(call)
        name, arguments = function.get("name"), function.get("arguments")
        if not isinstance(name, str) or not isinstance(arguments, str | None):
            raise invalid_response("a tool call without a `function.name`")
        calls.append(ToolCall(name, arguments or ""))
    usage = openai_compat.usage_of(data)
    return Generation(
        text=message.get("content") or "",
        finish_reason=choice.get("finish_reason") or "stop",
        prompt_tokens=usage[0] if usage else None,
        completion_tokens=usage[1] if usage else None,
        tool_calls=calls,
        reasoning=_reasoning(message),
    )


class ChunkReader:
    """One stream's chunks (its first choice) → pieces; the finish reason and usage kept."""

    __slots__ = ("_calls", "finish_reason", "usage")

    def __init__(self) -> None:
        # Upstream call index → ours (calls counted from 0 in the order they start).
        self._calls: dict[int, int] = {}
        self.finish_reason: str | None = None
        self.usage: tuple[int, int] | None = None

    def feed(self, data: dict[str, Any]) -> list[Piece]:
        openai_compat.checked_chat(data, stream=True)
        usage = openai_compat.usage_of(data)
        if usage is not None:
            self.usage = usage
        pieces: list[Piece] = []
        for choice in data["choices"]:
            if choice["index"] != 0:
                continue
            delta = choice["delta"]
            reasoning = _reasoning(delta)
            if reasoning:
                pieces.append(ReasoningPiece(reasoning))
            if delta.get("content"):
                pieces.append(TextPiece(delta["content"]))
            for call in delta.get("tool_calls") or ():
                pieces.extend(self._call(call))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return pieces

    def _call(self, call: dict[str, Any]) -> list[Piece]:
        function = _function(call)
        index = call.get("index")
        if not isinstance(index, int):
            raise invalid_response("a tool-call delta without an `index`")
        pieces: list[Piece] = []
        ours = self._calls.get(index)
        if ours is None:
            name = function.get("name")
            if not isinstance(name, str) or not name:
                raise invalid_response("a tool call's first delta without `function.name`")
            ours = self._calls[index] = len(self._calls)
            pieces.append(ToolCallStart(ours, name))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            pieces.append(ToolCallArguments(ours, arguments))
        return pieces
