"""The Responses API event stream, built from the neutral stream pieces (pure and stateful:
one ``ResponseStream`` per stream; each call returns the SSE bytes to send).

Event names and fields follow openai-python's ``ResponseStreamEvent`` union; the item and
part each event attaches to follow huggingface/responses.js (a reasoning item streams one
``reasoning_text`` content part). Sequence: ``response.created``, ``response.in_progress``,
then per output item ``output_item.added`` … ``output_item.done``, then
``response.completed`` | ``response.incomplete`` | ``response.failed``. No ``[DONE]``.
"""

from __future__ import annotations

import msgspec

from shim.adapters import response_output as out
from shim.adapters._result import Piece, ReasoningPiece, TextPiece, ToolCall, ToolCallStart
from shim.adapters.responses import item_id
from shim.errors import ShimError
from shim.openai import response_events as ev
from shim.openai import responses as rs
from shim.openai.sse import encode_named_event

_encoder = msgspec.json.Encoder()


class ResponseStream:
    """Feed it ``start()``, then each piece, then ``finish(...)`` and ``end()`` (or
    ``fail(error)`` when the upstream breaks after the first byte); ``response`` is then the
    final object to store. ``end()`` is apart so that the response can be stored before its
    terminal event is sent: a failure to store it is ``fail(error)`` instead.

    Items are streamed one at a time, in the order their first piece arrives: text that is
    only whitespace is held back until real text follows, and dropped if the answer ends in
    tool calls, so that the final response equals ``build_response`` of the same generation.
    Arguments must follow their call's ``ToolCallStart`` before the next item begins.
    """

    def __init__(
        self, request: rs.ResponseCreateRequest, *, response_id: str, created_at: int
    ) -> None:
        self._request = request
        self._id = response_id
        self._created_at = created_at
        self._seq = 0
        self._output: list[rs.OutputItem] = []
        # The item being streamed (always the last of _output), its text and call index.
        self._open: rs.OutputItem | None = None
        self._parts: list[str] = []
        self._call = -1
        self._held = ""
        self.response: rs.Response | None = None
        # The terminal event went out (end or fail): nothing follows it.
        self._ended = False

    def start(self) -> bytes:
        skeleton = out.envelope(self._request, response_id=self._id, created_at=self._created_at)
        return self._emit(ev.ResponseCreatedEvent(response=skeleton)) + (
            self._emit(ev.ResponseInProgressEvent(response=skeleton))
        )

    def feed(self, piece: Piece) -> bytes:
        if isinstance(piece, TextPiece):
            return self._text(piece.text)
        if isinstance(piece, ReasoningPiece):
            return self._reasoning(piece.text)
        if isinstance(piece, ToolCallStart):
            data = self._close()
            call = out.function_call_item(self._id, len(self._output), ToolCall(piece.name, ""))
            call.status = "in_progress"
            self._call = piece.index
            return data + self._add(call)
        if not isinstance(self._open, rs.FunctionCall) or piece.index != self._call:
            raise ValueError(f"arguments for tool call {piece.index}, which is not open")
        self._parts.append(piece.text)
        return self._emit(
            ev.FunctionCallArgumentsDeltaEvent(
                item_id=self._open.id,
                output_index=len(self._output) - 1,
                delta=piece.text,
            )
        )

    def finish(
        self, *, finish_reason: str, prompt_tokens: int | None, completion_tokens: int | None
    ) -> bytes:
        """The last item's done events; ``response`` becomes the finished object."""
        incomplete = finish_reason in out.INCOMPLETE_REASONS
        data = b""
        has_answer = any(isinstance(i, rs.Message | rs.FunctionCall) for i in self._output)
        if not has_answer:
            # Nothing but (maybe) reasoning or whitespace: the answer is a message all the same.
            data += self._close() + self._open_message() + self._delta(self._held)
        data += self._close("incomplete" if incomplete else "completed")
        self.response = out.envelope(
            self._request,
            response_id=self._id,
            created_at=self._created_at,
            output=self._output,
            finish_reason=finish_reason,
            usage=out.usage(prompt_tokens, completion_tokens),
        )
        return data

    def end(self) -> bytes:
        """``finish``'s terminal event: ``response.completed`` or ``response.incomplete``
        (nothing once the stream failed)."""
        response = self.response
        if self._ended or response is None:
            return b""
        self._ended = True
        if response.status == "incomplete":
            return self._emit(ev.ResponseIncompleteEvent(response=response))
        return self._emit(ev.ResponseCompletedEvent(response=response))

    def fail(self, error: ShimError) -> bytes:
        """``response.failed`` with what was produced so far (the open item incomplete), in
        place of ``end()``'s event; the output of a ``finish``ed stream stays as it is."""
        self._ended = True
        if self._open is not None:
            self._fill(self._open, "incomplete")
            self._open = None
        finished = self.response
        self.response = out.envelope(
            self._request,
            response_id=self._id,
            created_at=self._created_at,
            output=self._output,
            usage=finished.usage if finished is not None else None,
            error=error,
        )
        return self._emit(ev.ResponseFailedEvent(response=self.response))

    # --- items --------------------------------------------------------------------------------

    def _text(self, text: str) -> bytes:
        if isinstance(self._open, rs.Message):
            return self._delta(text)
        self._held += text
        if not self._held.strip():
            return b""
        return self._close() + self._open_message() + self._delta(self._held)

    def _reasoning(self, text: str) -> bytes:
        if not text:
            return b""
        data = b""
        if not isinstance(self._open, rs.ReasoningItem):
            item = out.reasoning_item(item_id("rs", self._id, len(self._output)), "")
            data = self._close() + self._add(item) + self._part("added", rs.ReasoningText(""))
        assert self._open is not None
        self._parts.append(text)
        return data + self._emit(
            ev.ReasoningTextDeltaEvent(
                item_id=self._open.id,
                output_index=len(self._output) - 1,
                content_index=0,
                delta=text,
            )
        )

    def _open_message(self) -> bytes:
        item = out.message_item(item_id("msg", self._id, len(self._output)), "")
        return self._add(item) + self._part("added", rs.OutputText(""))

    def _delta(self, text: str) -> bytes:
        """Answer text into the open message (which takes any held-back whitespace)."""
        assert self._open is not None
        self._held = ""
        if not text:
            return b""
        self._parts.append(text)
        return self._emit(
            ev.OutputTextDeltaEvent(
                item_id=self._open.id,
                output_index=len(self._output) - 1,
                content_index=0,
                delta=text,
            )
        )

    def _add(self, item: rs.OutputItem) -> bytes:
        item.status = "in_progress"
        if isinstance(item, rs.Message | rs.ReasoningItem):
            item.content = []
        self._output.append(item)
        self._open, self._parts = item, []
        return self._emit(ev.OutputItemAddedEvent(output_index=len(self._output) - 1, item=item))

    def _part(self, stage: str, part: rs.OutputText | rs.ReasoningText) -> bytes:
        assert self._open is not None
        kind = ev.ContentPartAddedEvent if stage == "added" else ev.ContentPartDoneEvent
        return self._emit(
            kind(
                item_id=self._open.id,
                output_index=len(self._output) - 1,
                content_index=0,
                part=part,
            )
        )

    def _close(self, status: rs.ItemStatus = "completed") -> bytes:
        """The done events of the open item (if any), which takes its final text and status."""
        item = self._open
        if item is None:
            return b""
        text = self._fill(item, status)
        index = len(self._output) - 1
        if isinstance(item, rs.FunctionCall):
            data = self._emit(
                ev.FunctionCallArgumentsDoneEvent(
                    item_id=item.id, output_index=index, arguments=text
                )
            )
        else:
            # A message's text and a reasoning item's close alike: the text, then its part.
            message = isinstance(item, rs.Message)
            done = ev.OutputTextDoneEvent if message else ev.ReasoningTextDoneEvent
            part = rs.OutputText(text) if message else rs.ReasoningText(text)
            data = self._emit(
                done(item_id=item.id, output_index=index, content_index=0, text=text)
            ) + self._part("done", part)
        self._open = None
        return data + self._emit(ev.OutputItemDoneEvent(output_index=index, item=item))

    def _fill(self, item: rs.OutputItem, status: rs.ItemStatus) -> str:
        text = "".join(self._parts)
        item.status = status
        if isinstance(item, rs.FunctionCall):
            item.arguments = text
        elif isinstance(item, rs.Message):
            item.content = [rs.OutputText(text)]
        else:
            item.content = [rs.ReasoningText(text)]
        return text

    def _emit(self, event: ev.StreamEvent) -> bytes:
        event.sequence_number = self._seq
        self._seq += 1
        return encode_named_event(_NAMES[type(event)], _encoder.encode(event))


_NAMES: dict[type, bytes] = {
    cls: str(cls.__struct_config__.tag).encode()
    for cls in (
        ev.ResponseCreatedEvent,
        ev.ResponseInProgressEvent,
        ev.ResponseCompletedEvent,
        ev.ResponseIncompleteEvent,
        ev.ResponseFailedEvent,
        ev.OutputItemAddedEvent,
        ev.OutputItemDoneEvent,
        ev.ContentPartAddedEvent,
        ev.ContentPartDoneEvent,
        ev.OutputTextDeltaEvent,
        ev.OutputTextDoneEvent,
        ev.ReasoningTextDeltaEvent,
        ev.ReasoningTextDoneEvent,
        ev.FunctionCallArgumentsDeltaEvent,
        ev.FunctionCallArgumentsDoneEvent,
    )
}
