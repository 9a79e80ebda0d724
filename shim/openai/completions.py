"""``POST /v1/completions`` (legacy) wire types, fields in OpenAI reference order.

Spec: openai-openapi ``CreateCompletionRequest`` / ``CreateCompletionResponse``; stream chunks
have the same shape as the response, ``finish_reason`` null until the last.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from shim.openai.chat import Penalty, PositiveInt, Probability, StopList, Temperature
from shim.openai.common import Answer, StreamOptions, Usage

# str | list[str] | list[int] | list[list[int]]; msgspec takes one array type per union, so the
# list's items are checked by the handler.
Prompt = str | list[str | int | list[int]]


class CompletionRequest(msgspec.Struct):
    model: str
    prompt: Prompt
    best_of: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    echo: bool | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: Annotated[int, msgspec.Meta(ge=0, le=5)] | None = None
    # OpenAI's default is 16 when absent.
    max_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    presence_penalty: Penalty | None = None
    seed: int | None = None
    stop: str | StopList | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    user: str | None = None
    # Extensions many OpenAI-compatible servers accept.
    top_k: PositiveInt | None = None
    repetition_penalty: Annotated[float, msgspec.Meta(gt=0)] | None = None
    metadata: dict[str, Any] | None = None


class CompletionLogprobs(msgspec.Struct):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class CompletionChoice(msgspec.Struct, kw_only=True):
    text: str
    index: int
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None


class Completion(Answer, kw_only=True):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]
    # null on stream chunks but the usage chunk.
    usage: Usage | None = None
