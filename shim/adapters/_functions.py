"""The legacy ``functions`` / ``function_call`` API on OpenAI-speaking upstreams, which mostly
lack it (TGI's Messages API, vLLM): the request in today's terms (``tools``, ``tool_choice``,
tool calls and ``tool`` results in the history), the answer back in the legacy shape
(``function_call``, ``finish_reason: "function_call"``). Pure functions on dicts.
"""

from __future__ import annotations

from typing import Any

from shim.adapters._tools import from_functions
from shim.errors import InvalidRequestError


def is_legacy(request: dict[str, Any]) -> bool:
    """The request uses the legacy ``functions`` API."""
    return request.get("functions") is not None or request.get("function_call") is not None


def tools_from_legacy(request: dict[str, Any]) -> dict[str, Any]:
    """A legacy ``functions`` request in today's terms: ``tools``, ``tool_choice``, and the
    history's ``function_call`` turns and ``function`` results as tool calls and results."""
    out = dict(request)
    functions, function_call = out.pop("functions", None), out.pop("function_call", None)
    if not isinstance(functions, list | None):
        raise InvalidRequestError("`functions` must be a list.", param="functions")
    tools, choice = from_functions(functions, function_call)
    if tools:
        out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice
    messages = out.get("messages")
    if isinstance(messages, list):
        out["messages"] = _legacy_messages(messages)
    return out


def _legacy_messages(messages: list[Any]) -> list[Any]:
    out: list[Any] = []
    latest: dict[str, str] = {}  # function name → id given to its latest call
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            out.append(message)
            continue
        call = message.get("function_call")
        if isinstance(call, dict) and not message.get("tool_calls"):
            call_id = f"call_{i}"
            latest[str(call.get("name"))] = call_id
            message = {k: v for k, v in message.items() if k != "function_call"}
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": call}]
        elif message.get("role") == "function":
            name = str(message.get("name"))
            message = {"role": "tool", "content": message.get("content") or ""}
            message["tool_call_id"] = latest.get(name, f"call_{name}")
        out.append(message)
    return out


def as_legacy(choice: dict[str, Any], key: str) -> None:
    """A choice's tool calls as the legacy ``function_call`` (its first call only)."""
    message = choice[key]
    calls = message.pop("tool_calls", None) or []
    first = [c for c in calls if isinstance(c, dict) and c.get("index", 0) == 0]
    if first and isinstance(first[0].get("function"), dict):
        function = message["function_call"] = first[0]["function"]
        function.setdefault("arguments", "")  # OpenAI's first legacy delta: name and ""
    if choice.get("finish_reason") == "tool_calls":
        choice["finish_reason"] = "function_call"
