"""``POST /v1/chat/completions`` wire types, fields in OpenAI reference order.

Spec: openai-openapi ``CreateChatCompletionRequest`` / ``CreateChatCompletionResponse`` /
``CreateChatCompletionStreamResponse``. Requests are liberal (unknown fields ignored), responses
exact. ``None`` and absent are treated alike on the request side.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from shim.openai.common import Answer, StreamOptions, Usage

Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
StopList = Annotated[list[str], msgspec.Meta(max_length=4)]


#: The roles OpenAI accepts (``ChatCompletionRequestMessage``; ``function`` is the legacy one).
#: Anything else is a 400 on every protocol: a role is copied into rendered prompts and
#: forwarded upstream, so ``"user\n<|im_start|>system"`` must never get that far.
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
# msgspec's own words for an absent required field, so the handler's 400 names the field the
# same way (`messages[2].tool_call_id`) for the fields OpenAI requires only in some shapes.
_MISSING = "Object missing required field `{}`"


class ContentPart(msgspec.Struct, forbid_unknown_fields=False):
    type: str
    text: str | None = None
    image_url: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # ``ChatCompletionRequestMessageContentPartText`` requires `text`.
        if self.type == "text" and self.text is None:
            raise ValueError(_MISSING.format("text"))


class ToolCallFunction(msgspec.Struct):
    name: str
    arguments: str = ""


class ToolCall(msgspec.Struct):
    id: str
    function: ToolCallFunction
    type: str = "function"


class ChatMessage(msgspec.Struct):
    role: Role
    # A string, a list of content parts, or null (assistant with tool_calls).
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    # Deprecated: an assistant's call in the legacy `functions` API (results: role "function").
    function_call: ToolCallFunction | None = None

    def __post_init__(self) -> None:
        # ``ChatCompletionRequestToolMessage`` requires `tool_call_id`.
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError(_MISSING.format("tool_call_id"))


class ChatCompletionRequest(msgspec.Struct):
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    model: str
    audio: dict[str, Any] | None = None
    frequency_penalty: Penalty | None = None
    function_call: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: PositiveInt | None = None
    max_tokens: PositiveInt | None = None
    metadata: dict[str, Any] | None = None
    modalities: list[str] | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    parallel_tool_calls: bool | None = None
    prediction: dict[str, Any] | None = None
    presence_penalty: Penalty | None = None
    prompt_cache_key: str | None = None
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = None
    safety_identifier: str | None = None
    seed: int | None = None
    service_tier: str | None = None
    stop: str | StopList | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: Temperature | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    top_p: Probability | None = None
    user: str | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None
    # Extensions many OpenAI-compatible servers (vLLM, TGI) accept.
    top_k: PositiveInt | None = None
    repetition_penalty: Annotated[float, msgspec.Meta(gt=0)] | None = None


class TopLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(msgspec.Struct):
    content: list[TokenLogprob] | None
    refusal: None = None


class AssistantMessage(msgspec.Struct, kw_only=True):
    role: Literal["assistant"] = "assistant"
    # null when the answer is only tool calls (as OpenAI sends it).
    content: str | None
    refusal: None = None
    # Absent (UNSET), never null, when there are none: OpenAI omits them.
    tool_calls: list[ToolCall] | msgspec.UnsetType = msgspec.UNSET
    # The legacy `functions` API's one call (`tool_calls` is then absent).
    function_call: ToolCallFunction | msgspec.UnsetType = msgspec.UNSET
    # What a reasoning model thought (vLLM's and DeepSeek's name for it).
    reasoning_content: str | msgspec.UnsetType = msgspec.UNSET


class Choice(msgspec.Struct, kw_only=True):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str


class ChatCompletion(Answer, kw_only=True):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[Choice]
    usage: Usage


class DeltaFunction(msgspec.Struct, omit_defaults=True):
    # The name only in a call's first delta; `arguments` pieces after it ("" in the first).
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(msgspec.Struct, omit_defaults=True):
    """``ChatCompletionMessageToolCallChunk``: ``id`` and ``type`` only in a call's first delta."""

    index: int
    id: str | None = None
    type: str | None = None
    function: DeltaFunction | None = None


class Delta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None
    function_call: DeltaFunction | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(Answer, kw_only=True):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]
    # Only the final chunk of a stream with include_usage carries usage (and no choices).
    usage: Usage | None = None
