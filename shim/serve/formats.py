"""OpenAI's response formats: the chat and completions responses and stream chunks built from
neutral results (the SSE framing is ``shim.openai.sse``).

Ids and timestamps are made here (adapters have no clock), once per request: every chunk of a
stream carries the same ``id`` and ``created``.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from shim.adapters._result import (
    Generation,
    Piece,
    ReasoningPiece,
    TextPiece,
    TokenInfo,
    ToolCallArguments,
    ToolCallStart,
)
from shim.context import new_id
from shim.errors import ErrorBody
from shim.openai import chat, completions
from shim.openai.common import Usage
from shim.openai.sse import DONE, encode_event

_encoder = msgspec.json.Encoder()


def error_events(error: ErrorBody) -> bytes:
    """A failure after the first byte: one ``data: {"error": ...}`` event, then ``[DONE]``."""
    return encode_event(_encoder.encode(error)) + DONE


def _bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


_MARK = "\u0000shim-text\u0000"
_ENCODED_MARK = _encoder.encode(_MARK)


def _event_template(chunk: bytes) -> tuple[bytes, bytes]:
    """Split an encoded chunk whose text is the marker into the SSE event's fixed prefix and
    suffix: per token only the text is encoded (msgspec does the JSON escaping)."""
    prefix, suffix = chunk.split(_ENCODED_MARK)
    return b"data: " + prefix, suffix + b"\n\n"


class _Format:
    """What every response of one request shares: id, creation time, model name, and the
    pre-encoded frame of its text chunks. Subclasses say how a choice and a whole answer or
    stream chunk are spelled."""

    id_prefix = ""

    def __init__(self, model: str) -> None:
        self.id = self.id_prefix + new_id(24)
        self.created = int(time.time())
        self.model = model
        self._template: tuple[bytes, bytes] | None = None

    def _answer(self, choices: list[Any], usage: Usage) -> msgspec.Struct:
        raise NotImplementedError

    def _piece(self, choices: list[Any], usage: Usage | None = None) -> msgspec.Struct:
        """A stream chunk."""
        raise NotImplementedError

    def _choice(self, index: int, generation: Generation, *, logprobs: bool) -> msgspec.Struct:
        raise NotImplementedError

    def response(self, generations: list[Generation], usage: Usage, *, logprobs: bool) -> bytes:
        choices = [self._choice(i, g, logprobs=logprobs) for i, g in enumerate(generations)]
        return _encoder.encode(self._answer(choices, usage))

    def usage(self, usage: Usage) -> bytes:
        """The last chunk of a stream with ``include_usage``: usage and no choices."""
        return _encoder.encode(self._piece([], usage))

    def text(self, text: str, token: TokenInfo | None, *, logprobs: bool) -> bytes:
        raise NotImplementedError

    def text_event(self, text: str) -> bytes:
        """The SSE event of a text delta without logprobs: the hot path of every stream."""
        if self._template is None:
            self._template = _event_template(self.text(_MARK, None, logprobs=False))
        prefix, suffix = self._template
        return prefix + _encoder.encode(text) + suffix


def call_id() -> str:
    """A tool call's id, unique per call (OpenAI's shape: ``call_`` + 24 characters)."""
    return "call_" + new_id(24)


class ChatFormat(_Format):
    """``legacy``: the request used the legacy ``functions`` API, so calls are answered as
    ``function_call`` (the first call only)."""

    id_prefix = "chatcmpl-"

    def __init__(self, model: str, *, legacy: bool = False) -> None:
        super().__init__(model)
        self.legacy = legacy

    @staticmethod
    def logprobs(tokens: list[TokenInfo] | None) -> chat.ChoiceLogprobs | None:
        if tokens is None:
            return None
        return chat.ChoiceLogprobs(
            content=[
                chat.TokenLogprob(
                    token=t.text,
                    logprob=t.logprob,
                    bytes=_bytes(t.text),
                    top_logprobs=[chat.TopLogprob(a, lp, _bytes(a)) for a, lp in t.top],
                )
                for t in tokens
            ]
        )

    def _answer(self, choices: list[Any], usage: Usage) -> msgspec.Struct:
        return chat.ChatCompletion(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        )

    def _piece(self, choices: list[Any], usage: Usage | None = None) -> msgspec.Struct:
        return chat.ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        )

    def _choice(self, index: int, generation: Generation, *, logprobs: bool) -> msgspec.Struct:
        return chat.Choice(
            index=index,
            message=self._message(generation),
            finish_reason=generation.finish_reason,
            logprobs=self.logprobs(generation.tokens) if logprobs else None,
        )

    def _message(self, generation: Generation) -> chat.AssistantMessage:
        calls = generation.tool_calls
        # As OpenAI: null content when the answer is only calls.
        message = chat.AssistantMessage(content=generation.text or (None if calls else ""))
        if generation.reasoning:
            message.reasoning_content = generation.reasoning
        if calls and self.legacy:
            message.function_call = chat.ToolCallFunction(calls[0].name, calls[0].arguments)
        elif calls:
            message.tool_calls = [
                chat.ToolCall(id=call_id(), function=chat.ToolCallFunction(c.name, c.arguments))
                for c in calls
            ]
        return message

    def piece_events(self, pieces: list[Piece]) -> bytes:
        """A parsed answer's pieces as stream events: text, ``reasoning_content``, and OpenAI's
        tool-call deltas (a call's first carries ``index``, ``id``, ``type``, the name and
        ``arguments: ""``; later ones argument pieces)."""
        out = []
        for piece in pieces:
            if isinstance(piece, TextPiece):
                out.append(self.text_event(piece.text))
                continue
            delta = self._delta(piece)
            if delta is not None:
                choice = chat.ChunkChoice(index=0, delta=delta)
                out.append(encode_event(_encoder.encode(self._piece([choice]))))
        return b"".join(out)

    def _delta(self, piece: Piece) -> chat.Delta | None:
        if isinstance(piece, ReasoningPiece):
            return chat.Delta(reasoning_content=piece.text)
        assert not isinstance(piece, TextPiece)
        if isinstance(piece, ToolCallStart):
            function = chat.DeltaFunction(name=piece.name, arguments="")
            call = chat.DeltaToolCall(piece.index, call_id(), "function", function)
        else:
            function = chat.DeltaFunction(arguments=piece.text)
            call = chat.DeltaToolCall(piece.index, function=function)
        if self.legacy:  # the legacy API has one call: the first
            return chat.Delta(function_call=function) if piece.index == 0 else None
        return chat.Delta(tool_calls=[call])

    def first(self) -> bytes | None:
        choice = chat.ChunkChoice(index=0, delta=chat.Delta(role="assistant", content=""))
        return _encoder.encode(self._piece([choice]))

    def text(self, text: str, token: TokenInfo | None, *, logprobs: bool) -> bytes:
        lp = self.logprobs([token]) if logprobs and token is not None else None
        choice = chat.ChunkChoice(index=0, delta=chat.Delta(content=text), logprobs=lp)
        return _encoder.encode(self._piece([choice]))

    def finish(self, reason: str) -> bytes:
        choice = chat.ChunkChoice(index=0, delta=chat.Delta(), finish_reason=reason)
        return _encoder.encode(self._piece([choice]))


class CompletionFormat(_Format):
    id_prefix = "cmpl-"

    @staticmethod
    def logprobs(
        tokens: list[TokenInfo] | None, offset: int = 0
    ) -> completions.CompletionLogprobs | None:
        if tokens is None:
            return None
        offsets = []
        for t in tokens:
            offsets.append(offset)
            offset += len(t.text)
        return completions.CompletionLogprobs(
            tokens=[t.text for t in tokens],
            token_logprobs=[t.logprob for t in tokens],
            top_logprobs=[dict(t.top) for t in tokens],
            text_offset=offsets,
        )

    def _answer(self, choices: list[Any], usage: Usage) -> msgspec.Struct:
        return self._piece(choices, usage)

    def _piece(self, choices: list[Any], usage: Usage | None = None) -> msgspec.Struct:
        # A stream chunk has the shape of the whole answer (usage only on the last).
        return completions.Completion(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        )

    def _choice(self, index: int, generation: Generation, *, logprobs: bool) -> msgspec.Struct:
        return completions.CompletionChoice(
            text=generation.text,
            index=index,
            finish_reason=generation.finish_reason,
            logprobs=self.logprobs(generation.tokens) if logprobs else None,
        )

    def first(self) -> bytes | None:
        return None

    def text(self, text: str, token: TokenInfo | None, *, logprobs: bool) -> bytes:
        lp = self.logprobs([token]) if logprobs and token is not None else None
        choice = completions.CompletionChoice(text=text, index=0, finish_reason=None, logprobs=lp)
        return _encoder.encode(self._piece([choice]))

    def finish(self, reason: str) -> bytes:
        choice = completions.CompletionChoice(text="", index=0, finish_reason=reason)
        return _encoder.encode(self._piece([choice]))


Format = ChatFormat | CompletionFormat


def pieces_of(generation: Generation) -> list[Piece]:
    """A whole parsed answer as stream pieces: reasoning, text, then each call."""
    out: list[Piece] = []
    if generation.reasoning:
        out.append(ReasoningPiece(generation.reasoning))
    if generation.text:
        out.append(TextPiece(generation.text))
    for i, call in enumerate(generation.tool_calls):
        out += [ToolCallStart(i, call.name), ToolCallArguments(i, call.arguments)]
    return out
