"""``/v1/responses`` stream events (``stream: true``), tagged by ``type``.

Spec: openai-python ``src/openai/types/responses/response_*_event.py`` and the
``ResponseStreamEvent`` union. Every event carries ``sequence_number``; events about an item
carry ``output_index`` and ``item_id``, events about a part of it ``content_index`` as well.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shim.openai.responses import OutputItem, OutputText, ReasoningText, Response


class _Event(msgspec.Struct, tag_field="type", kw_only=True):
    # Numbered by the stream builder as each event is sent.
    sequence_number: int = 0


class ResponseCreatedEvent(_Event, tag="response.created"):
    response: Response


class ResponseInProgressEvent(_Event, tag="response.in_progress"):
    response: Response


class ResponseCompletedEvent(_Event, tag="response.completed"):
    response: Response


class ResponseIncompleteEvent(_Event, tag="response.incomplete"):
    response: Response


class ResponseFailedEvent(_Event, tag="response.failed"):
    response: Response


class OutputItemAddedEvent(_Event, tag="response.output_item.added"):
    output_index: int
    item: OutputItem


class OutputItemDoneEvent(_Event, tag="response.output_item.done"):
    output_index: int
    item: OutputItem


class ContentPartAddedEvent(_Event, tag="response.content_part.added"):
    item_id: str
    output_index: int
    content_index: int
    # output_text in a message, reasoning_text in a reasoning item.
    part: OutputText | ReasoningText


class ContentPartDoneEvent(_Event, tag="response.content_part.done"):
    item_id: str
    output_index: int
    content_index: int
    part: OutputText | ReasoningText


class OutputTextDeltaEvent(_Event, tag="response.output_text.delta"):
    item_id: str
    output_index: int
    content_index: int
    delta: str
    # Required by the SDK; shim returns no Responses logprobs.
    logprobs: list[Any] = msgspec.field(default_factory=list)


class OutputTextDoneEvent(_Event, tag="response.output_text.done"):
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[Any] = msgspec.field(default_factory=list)


class ReasoningTextDeltaEvent(_Event, tag="response.reasoning_text.delta"):
    item_id: str
    output_index: int
    content_index: int
    delta: str


class ReasoningTextDoneEvent(_Event, tag="response.reasoning_text.done"):
    item_id: str
    output_index: int
    content_index: int
    text: str


class FunctionCallArgumentsDeltaEvent(_Event, tag="response.function_call_arguments.delta"):
    item_id: str
    output_index: int
    delta: str


class FunctionCallArgumentsDoneEvent(_Event, tag="response.function_call_arguments.done"):
    item_id: str
    output_index: int
    arguments: str


StreamEvent = (
    ResponseCreatedEvent
    | ResponseInProgressEvent
    | ResponseCompletedEvent
    | ResponseIncompleteEvent
    | ResponseFailedEvent
    | OutputItemAddedEvent
    | OutputItemDoneEvent
    | ContentPartAddedEvent
    | ContentPartDoneEvent
    | OutputTextDeltaEvent
    | OutputTextDoneEvent
    | ReasoningTextDeltaEvent
    | ReasoningTextDoneEvent
    | FunctionCallArgumentsDeltaEvent
    | FunctionCallArgumentsDoneEvent
)
