"""The ``response`` object built from a neutral ``Generation`` (pure: the id and
``created_at`` are given by the caller).

Shapes follow openai-python's ``Response``, ``ResponseOutputMessage``,
``ResponseFunctionToolCall``, ``ResponseReasoningItem`` (the reasoning text as
``reasoning_text`` content, as vLLM and huggingface/responses.js return it) and
``ResponseUsage``. The stream builder (``response_stream``) ends with the same object.
"""

from __future__ import annotations

from collections.abc import Sequence

from shim.adapters._result import Generation, ToolCall
from shim.adapters.responses import SCHEMA_NAME, item_id
from shim.errors import ShimError
from shim.openai import responses as rs

#: Chat finish reasons that leave a response ``incomplete``, with OpenAI's reason.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def build_response(
    generation: Generation,
    *,
    request: rs.ResponseCreateRequest,
    response_id: str,
    created_at: int,
) -> rs.Response:
    """The finished response for a whole (non-streamed) generation."""
    incomplete = generation.finish_reason in INCOMPLETE_REASONS
    output: list[rs.OutputItem] = []
    if generation.reasoning:
        output.append(reasoning_item(item_id("rs", response_id, 0), generation.reasoning))
    if generation.text.strip() or not generation.tool_calls:
        output.append(message_item(item_id("msg", response_id, len(output)), generation.text))
    for call in generation.tool_calls:
        output.append(function_call_item(response_id, len(output), call))
    if incomplete:
        output[-1].status = "incomplete"
    return envelope(
        request,
        response_id=response_id,
        created_at=created_at,
        output=output,
        finish_reason=generation.finish_reason,
        usage=usage(generation.prompt_tokens, generation.completion_tokens),
    )


def message_item(id_: str, text: str) -> rs.Message:
    return rs.Message(id=id_, role="assistant", content=[rs.OutputText(text)])


def reasoning_item(id_: str, text: str) -> rs.ReasoningItem:
    return rs.ReasoningItem(id=id_, content=[rs.ReasoningText(text)])


def function_call_item(response_id: str, output_index: int, call: ToolCall) -> rs.FunctionCall:
    return rs.FunctionCall(
        id=item_id("fc", response_id, output_index),
        call_id=item_id("call", response_id, output_index),
        name=call.name,
        arguments=call.arguments,
    )


def usage(prompt_tokens: int | None, completion_tokens: int | None) -> rs.ResponseUsage:
    prompt, completion = prompt_tokens or 0, completion_tokens or 0
    return rs.ResponseUsage(
        input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion
    )


def response_error(error: ShimError) -> rs.ResponseError:
    """A failure as ``Response.error``: openai-python allows only its own codes there."""
    code = "rate_limit_exceeded" if error.status_code == 429 else "server_error"
    return rs.ResponseError(code=code, message=error.message)


def envelope(
    request: rs.ResponseCreateRequest,
    *,
    response_id: str,
    created_at: int,
    output: Sequence[rs.OutputItem] = (),
    finish_reason: str | None = None,
    usage: rs.ResponseUsage | None = None,
    error: ShimError | None = None,
) -> rs.Response:
    """The response object around ``output``, with the request's parameters echoed as OpenAI
    does. ``finish_reason`` None: still in progress (the stream's first events)."""
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    status: rs.ResponseStatus
    if error is not None:
        status = "failed"
    elif finish_reason is None:
        status = "in_progress"
    else:
        status = "incomplete" if reason else "completed"
    return rs.Response(
        id=response_id,
        created_at=created_at,
        status=status,
        error=response_error(error) if error is not None else None,
        incomplete_details=rs.IncompleteDetails(reason) if reason and not error else None,
        instructions=request.instructions,
        max_output_tokens=request.max_output_tokens,
        max_tool_calls=request.max_tool_calls,
        model=request.model,
        output=list(output),
        parallel_tool_calls=request.parallel_tool_calls is not False,
        previous_response_id=request.previous_response_id,
        store=request.store is not False,
        temperature=request.temperature,
        text=_text_echo(request.text),
        tool_choice=request.tool_choice if request.tool_choice is not None else "auto",
        tools=list(request.tools or ()),
        top_p=request.top_p,
        usage=usage,
        user=request.user,
        metadata=dict(request.metadata or {}),
    )


def _text_echo(text: rs.TextConfig | None) -> rs.TextConfig:
    fmt = text.format if text is not None else None
    if fmt is None:
        fmt = rs.TextFormat("text")
    elif fmt.type == "json_schema" and fmt.name is None:
        # The SDK requires a name; the chat request was sent with this one.
        fmt = rs.TextFormat("json_schema", SCHEMA_NAME, fmt.schema, fmt.description, fmt.strict)
    return rs.TextConfig(format=fmt, verbosity=text.verbosity if text is not None else None)
