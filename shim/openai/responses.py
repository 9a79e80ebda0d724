"""``/v1/responses`` wire types: the create request, items (input and output), the response.

Spec: openai-python ``src/openai/types/responses/`` (``ResponseCreateParamsBase``,
``Response``, ``ResponseOutputMessage``, ``ResponseFunctionToolCall``,
``ResponseReasoningItem``, ``ResponseUsage``, ``ResponseItemList``). The request is read
tolerantly (unknown fields ignored, every item kind in one Struct so a message may omit
``type``); what shim writes (items, the response) is exact, tagged by ``type``, and is also
what the state store keeps, so a stored response decodes back into these Structs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
# OpenAI: at most 16 pairs, keys up to 64 characters, values up to 512.
Metadata = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=64)], Annotated[str, msgspec.Meta(max_length=512)]],
    msgspec.Meta(max_length=16),
]

# --- request -----------------------------------------------------------------------------------


class InputContent(msgspec.Struct):
    """A content part of an input message or a function output: ``input_text``,
    ``output_text``, ``refusal``, ``input_image``, ``input_file``, ``input_audio``..."""

    type: str
    text: str | None = None
    refusal: str | None = None
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


#: The roles of a message item (chat's ``tool``/``function`` roles are items of their own here).
MessageRole = Literal["user", "system", "developer", "assistant"]


class InputItem(msgspec.Struct):
    """One item of ``input``. A message may come without ``type`` (``EasyInputMessage``), and
    so may an item reference (``ItemReference``: only ``id``, ``type`` optional or null)."""

    type: str | None = None
    # An output item's id, or a reference's target (``item_reference``).
    id: str | None = None
    # message
    role: str | None = None
    content: str | list[InputContent] | None = None
    # function_call / function_call_output
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[InputContent] | None = None


class Tool(msgspec.Struct, omit_defaults=True):
    """A tool; only ``function`` tools are served (flat, unlike chat's ``{"function": {...}}``)."""

    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoiceFunction(msgspec.Struct, omit_defaults=True):
    """``{"type": "function", "name": ...}``; other object forms name hosted tools."""

    type: str
    name: str | None = None


class TextFormat(msgspec.Struct, omit_defaults=True):
    """``text.format``: ``text``, ``json_object`` or ``json_schema`` (flat: name, schema...)."""

    type: str
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, omit_defaults=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class Reasoning(msgspec.Struct):
    """Echoed as nulls: no reasoning effort is applied by shim's backends."""

    effort: str | None = None
    summary: str | None = None


class ResponseCreateRequest(msgspec.Struct):
    """``POST /v1/responses``; fields in openai-python's order (``ResponseCreateParamsBase``).

    Fields shim does not serve are typed ``Any``: they only need to be seen to be rejected.
    """

    model: str
    input: str | list[InputItem] | None = None
    access_programs: Any = None
    background: bool | None = None
    background_options: Any = None
    context_management: Any = None
    conversation: Any = None
    image: Any = None
    include: list[str] | None = None
    instructions: str | None = None
    max_output_tokens: PositiveInt | None = None
    max_tool_calls: int | None = None
    metadata: Metadata | None = None
    moderation: Any = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    prompt: Any = None
    prompt_cache_key: str | None = None
    prompt_cache_options: Any = None
    prompt_cache_retention: str | None = None
    reasoning: Any = None
    safety_identifier: str | None = None
    service_tier: str | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: Any = None
    temperature: Temperature | None = None
    text: TextConfig | None = None
    tool_choice: str | ToolChoiceFunction | None = None
    tools: list[Tool] | None = None
    top_logprobs: int | None = None
    top_p: Probability | None = None
    truncation: str | None = None
    user: str | None = None


# --- items (what shim writes and stores) ------------------------------------------------------

ItemStatus = Literal["in_progress", "completed", "incomplete"]


class InputText(msgspec.Struct, tag_field="type", tag="input_text"):
    text: str


class InputImage(msgspec.Struct, tag_field="type", tag="input_image"):
    image_url: str | None = None
    file_id: str | None = None
    detail: str = "auto"


class OutputText(msgspec.Struct, tag_field="type", tag="output_text"):
    text: str
    annotations: list[Any] = msgspec.field(default_factory=list)


class Refusal(msgspec.Struct, tag_field="type", tag="refusal"):
    refusal: str


class ReasoningText(msgspec.Struct, tag_field="type", tag="reasoning_text"):
    text: str


class SummaryText(msgspec.Struct, tag_field="type", tag="summary_text"):
    text: str


MessageContent = InputText | InputImage | OutputText | Refusal


class Message(msgspec.Struct, tag_field="type", tag="message", kw_only=True):
    """A message item: the assistant's answer (``output_text`` parts) or an input message
    (``input_text`` parts; ``ResponseInputMessageItem``)."""

    id: str
    role: MessageRole
    status: ItemStatus = "completed"
    content: list[MessageContent]


class FunctionCall(msgspec.Struct, tag_field="type", tag="function_call", kw_only=True):
    id: str
    # What the client echoes back in its function_call_output.
    call_id: str
    name: str
    arguments: str
    status: ItemStatus = "completed"


class FunctionCallOutput(
    msgspec.Struct, tag_field="type", tag="function_call_output", kw_only=True
):
    id: str
    call_id: str
    output: str
    status: ItemStatus = "completed"


class ReasoningItem(msgspec.Struct, tag_field="type", tag="reasoning", kw_only=True):
    """The model's reasoning text as ``content`` (``reasoning_text`` parts); shim writes no
    summaries, so ``summary`` is empty."""

    id: str
    summary: list[SummaryText] = msgspec.field(default_factory=list)
    content: list[ReasoningText] = msgspec.field(default_factory=list)
    status: ItemStatus = "completed"


Item = Message | FunctionCall | FunctionCallOutput | ReasoningItem
OutputItem = Message | FunctionCall | ReasoningItem


# --- the response ------------------------------------------------------------------------------


class InputTokensDetails(msgspec.Struct):
    cached_tokens: int = 0
    # Newer SDKs require it (prompt-cache writes); nothing is cached by shim.
    cache_write_tokens: int = 0


class OutputTokensDetails(msgspec.Struct):
    reasoning_tokens: int = 0


class ResponseUsage(msgspec.Struct, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(msgspec.Struct):
    reason: str


class ResponseError(msgspec.Struct):
    # One of openai-python's ``ResponseError.code`` values (server_error, rate_limit_exceeded...).
    code: str
    message: str


ResponseStatus = Literal["completed", "failed", "in_progress", "incomplete"]


class Response(msgspec.Struct, kw_only=True):
    """The ``response`` object; no ``output_text`` (the SDKs compute it from ``output``)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: ResponseStatus
    background: bool = False
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    model: str
    output: list[OutputItem] = msgspec.field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: Reasoning = msgspec.field(default_factory=Reasoning)
    store: bool = True
    temperature: float | None = None
    text: TextConfig = msgspec.field(default_factory=TextConfig)
    tool_choice: str | ToolChoiceFunction = "auto"
    tools: list[Tool] = msgspec.field(default_factory=list)
    top_logprobs: int = 0
    top_p: float | None = None
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class ResponseItemList(msgspec.Struct, kw_only=True):
    """``GET /v1/responses/{id}/input_items``; ids are null on an empty page."""

    object: Literal["list"] = "list"
    data: list[Item]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedResponse(msgspec.Struct):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True
