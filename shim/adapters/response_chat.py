"""The conversation of a Responses API request as a chat completions request (pure).

The mapping follows huggingface/responses.js (HF's Responses server over chat completions)
and vLLM's ``serving_responses`` (the previous response's input, then its output, then the new
input), except that ``function_call`` items become assistant ``tool_calls`` (responses.js
sends them as tool messages) and ``instructions`` lead as the system message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shim.adapters.responses import SCHEMA_NAME
from shim.errors import InvalidRequestError
from shim.openai import chat, common
from shim.openai import responses as rs


def to_chat(
    req: rs.ResponseCreateRequest, context: Sequence[rs.Item], *, text_only: bool
) -> chat.ChatCompletionRequest:
    """The chat request for the conversation ``context`` (see ``conversation``)."""
    messages: list[chat.ChatMessage] = []
    if req.instructions:
        messages.append(chat.ChatMessage(role="system", content=req.instructions))
    for item in context:
        _append(messages, item, text_only)
    if not messages:
        raise InvalidRequestError("`input` is required.", param="input")
    text = req.text.format if req.text else None
    return chat.ChatCompletionRequest(
        messages=messages,
        model=req.model,
        max_completion_tokens=req.max_output_tokens,
        parallel_tool_calls=req.parallel_tool_calls,
        response_format=_response_format(text),
        stream=req.stream,
        # The usage arrives in the last chunk; response.completed carries it.
        stream_options=common.StreamOptions(include_usage=True) if req.stream else None,
        temperature=req.temperature,
        tool_choice=_chat_tool_choice(req.tool_choice),
        tools=[_chat_tool(tool) for tool in req.tools] if req.tools else None,
        top_p=req.top_p,
    )


def _append(messages: list[chat.ChatMessage], item: rs.Item, text_only: bool) -> None:
    if isinstance(item, rs.Message):
        # Chat templates know no `developer` role; OpenAI treats it as the system prompt.
        role: chat.Role = "system" if item.role == "developer" else item.role
        messages.append(chat.ChatMessage(role=role, content=_chat_content(item, text_only)))
    elif isinstance(item, rs.FunctionCall):
        call = chat.ToolCall(
            id=item.call_id, function=chat.ToolCallFunction(item.name, item.arguments)
        )
        last = messages[-1] if messages else None
        # Calls made in one turn (after its text, if any) form one assistant message.
        if last is not None and last.role == "assistant":
            last.tool_calls = [*(last.tool_calls or ()), call]
        else:
            messages.append(chat.ChatMessage(role="assistant", tool_calls=[call]))
    elif isinstance(item, rs.FunctionCallOutput):
        messages.append(
            chat.ChatMessage(role="tool", content=item.output, tool_call_id=item.call_id)
        )


def _chat_content(item: rs.Message, text_only: bool) -> str | list[chat.ContentPart]:
    parts: list[chat.ContentPart] = []
    for part in item.content:
        if isinstance(part, rs.InputImage):
            if text_only:
                raise InvalidRequestError(
                    "The conversation holds an image, which this text-only model cannot read.",
                    param="previous_response_id",
                )
            image = {"url": part.image_url, "detail": part.detail}
            parts.append(chat.ContentPart("image_url", image_url=image))
        else:
            parts.append(chat.ContentPart("text", text=_text_of(part)))
    if len(parts) == 1 and parts[0].type == "text":
        return parts[0].text or ""
    return parts


def _text_of(part: rs.InputText | rs.OutputText | rs.Refusal) -> str:
    return part.refusal if isinstance(part, rs.Refusal) else part.text


def _chat_tool(tool: rs.Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: str | rs.ToolChoiceFunction | None) -> str | dict[str, Any] | None:
    if choice is None or isinstance(choice, str):
        return choice
    return {"type": "function", "function": {"name": choice.name}}


def _response_format(fmt: rs.TextFormat | None) -> dict[str, Any] | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": fmt.name or SCHEMA_NAME, "schema": fmt.schema}
    if fmt.description is not None:
        spec["description"] = fmt.description
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}
