"""Chat messages → the prompt a rendered protocol sends (pure; the template comes from config)."""

from __future__ import annotations

from typing import Any

from shim.errors import InvalidRequestError
from shim.openai import chat
from shim.templates import ChatTemplate, TemplateError


def message_dicts(messages: list[chat.ChatMessage]) -> list[dict[str, Any]]:
    """Messages as templates expect them: text content as one string, tool calls as dicts."""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        content = message.content
        if isinstance(content, list):
            texts = []
            for part in content:
                if part.type != "text" or part.text is None:
                    raise InvalidRequestError(
                        f"Content part type `{part.type}` is not supported by this text-only "
                        "model; send text parts.",
                        param=f"messages[{i}].content",
                    )
                texts.append(part.text)
            content = "\n".join(texts)
        item: dict[str, Any] = {"role": message.role, "content": content or ""}
        if message.name is not None:
            item["name"] = message.name
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": call.type,
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in message.tool_calls
            ]
        if message.tool_call_id is not None:
            item["tool_call_id"] = message.tool_call_id
        out.append(item)
    return out


def render(template: ChatTemplate, messages: list[chat.ChatMessage]) -> str:
    try:
        return template.render(message_dicts(messages))
    except TemplateError as exc:
        raise InvalidRequestError(str(exc), param="messages") from None


def render_plain(messages: list[chat.ChatMessage]) -> str:
    """The default for text2text models (T5/BART take plain text, not chat markup): one user
    message is sent as is; a conversation as ``Role: content`` lines."""
    items = message_dicts(messages)
    if len(items) == 1:
        return str(items[0]["content"])
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in items)
