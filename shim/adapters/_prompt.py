"""Chat messages → the prompt a rendered protocol sends (pure; the template comes from config).

Messages reach the template as transformers' chat templates expect them: an assistant's
``tool_calls`` with ``function.arguments`` parsed into an object (Hub templates write it with
``tojson``), ``tool`` messages with ``content``, ``tool_call_id`` and the ``name`` of the
function they answer (OpenAI sends no name; it comes from the call with that id). Legacy
``function_call`` / ``function`` messages become the same tool call and tool result.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shim.errors import InvalidRequestError
from shim.openai import chat
from shim.templates import ChatTemplate, TemplateError

_json = msgspec.json.Decoder()


def message_dicts(messages: list[chat.ChatMessage]) -> list[dict[str, Any]]:
    """Messages as templates expect them: text content as one string, tool calls as dicts."""
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id → function name
    legacy: dict[str, str] = {}  # function name → id of its latest legacy call
    for i, message in enumerate(messages):
        item: dict[str, Any] = {"role": message.role, "content": _text(message, i)}
        if message.name is not None:
            item["name"] = message.name
        calls = message.tool_calls
        if not calls and message.function_call is not None:
            legacy[message.function_call.name] = f"call_{i}"
            calls = [chat.ToolCall(id=f"call_{i}", function=message.function_call)]
        if calls:
            item["tool_calls"] = [_call(call, names) for call in calls]
        call_id: str | None = message.tool_call_id
        if message.role == "function":
            item["role"] = "tool"
            call_id = call_id or legacy.get(message.name or "")
        if call_id is not None:
            item["tool_call_id"] = call_id
            if "name" not in item and call_id in names:
                item["name"] = names[call_id]
        out.append(item)
    return out


def _text(message: chat.ChatMessage, i: int) -> str:
    content = message.content
    if not isinstance(content, list):
        return content or ""
    texts = []
    for part in content:
        if part.type != "text" or part.text is None:
            raise InvalidRequestError(
                f"Content part type `{part.type}` is not supported by this text-only "
                "model; send text parts.",
                param=f"messages[{i}].content",
            )
        texts.append(part.text)
    return "\n".join(texts)


def _call(call: chat.ToolCall, names: dict[str, str]) -> dict[str, Any]:
    names[call.id] = call.function.name
    return {
        "id": call.id,
        "type": call.type,
        "function": {"name": call.function.name, "arguments": _arguments(call.function.arguments)},
    }


def _arguments(text: str) -> Any:
    """The arguments as an object; text that is not a JSON object stays as it was sent."""
    if not text.strip():
        return {}
    try:
        value = _json.decode(text)
    except msgspec.DecodeError:
        return text
    return value if isinstance(value, dict) else text


def render(
    template: ChatTemplate,
    messages: list[chat.ChatMessage],
    *,
    tools: list[dict[str, Any]] | None = None,
) -> str:
    """The prompt; ``tools`` from ``_tools.ToolPlan.tools`` (None: no tools rendered)."""
    try:
        return template.render(message_dicts(messages), tools=tools)
    except TemplateError as exc:
        raise InvalidRequestError(str(exc), param="messages") from None


def render_plain(messages: list[chat.ChatMessage]) -> str:
    """The default for text2text models (T5/BART take plain text, not chat markup): one user
    message is sent as is; a conversation as ``Role: content`` lines."""
    items = message_dicts(messages)
    if len(items) == 1:
        return str(items[0]["content"])
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in items)
