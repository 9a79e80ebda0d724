"""Chat and completions streams on rendered protocols: ``RenderedStream`` translates TGI's
stream events into OpenAI chunks (the relay's translator), ``Replay`` sends a pipeline's one
answer as a stream when one was asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from shim.adapters._result import (
    Generation,
    Piece,
    StreamDelta,
    TextPiece,
    TokenInfo,
    ToolCallStart,
    estimate_tokens,
)
from shim.adapters._stop import StopScanner
from shim.errors import ErrorBody
from shim.openai.common import Usage
from shim.openai.sse import DONE, encode_event
from shim.serve.formats import ChatFormat, error_events, pieces_of
from shim.serve.job import Job


class RenderedStream:
    """TGI's stream events → OpenAI chunks, stop sequences applied as the text arrives (held
    back only while it may still become a stop), usage at the end.

    The answer's text becomes neutral ``Piece``s (``_pieces``: through the answer parser when
    the job has a ``Reading``, so reasoning and tool calls, never their markup) that ``_emit``
    writes in the client's format: chat and completions chunks here, Responses API events in
    ``shim.serve.responses``."""

    __slots__ = (
        "_answer", "_called", "_finish", "_job", "_last", "_parse", "_produced", "_scanner",
        "complete", "completion_tokens", "done", "prompt_tokens", "tokens",
    )  # fmt: skip

    def __init__(self, job: Job) -> None:
        self._job = job
        reading = job.reading
        # Bound once (per event it is one call): marker tokens to keep, token details only
        # for logprobs (built per event, they were ~4% of a stream's CPU).
        parse = job.adapter.parse_event
        options: dict[str, Any] = {"logprobs": True} if job.params.logprobs else {}
        if reading is not None:
            options["markers"] = reading.markers
        self._parse: Callable[[bytes], StreamDelta] = (
            partial(parse, **options) if options else parse
        )
        self._scanner = StopScanner(job.stops)
        self._produced: list[str] = []
        self._finish = "stop"
        # The event that ended the generation (its token counts, when TGI reports them).
        self._last: StreamDelta | None = None
        self._answer = reading.parser(job.prompts[0]) if reading is not None else None
        # A tool call was read: the finish reason becomes "tool_calls".
        self._called = False
        self.complete = self.done = False
        self.tokens = self.prompt_tokens = self.completion_tokens = 0

    def first(self) -> bytes:
        job = self._job
        first = job.fmt.first()
        out = encode_event(first) if first is not None else b""
        if job.params.echo:
            out += job.fmt.text_event(job.prompts[0])
        return out

    def feed(self, data: bytes) -> bytes:
        delta = self._parse(data)
        scanner = self._scanner
        text = scanner.feed(delta.text)
        out = b""
        if text:
            self.tokens += 1
            self._produced.append(text)
            out = self._emit(self._pieces(text), delta.token)
        if delta.finish_reason is not None or scanner.stopped:
            self._finish = "stop" if scanner.stopped else delta.finish_reason or "stop"
            self._last = delta
            self.complete = self.done = True
        return out

    def _pieces(self, text: str, *, last: bool = False) -> list[Piece]:
        """The answer text that arrived, as pieces (``last``: the answer ends with it)."""
        answer = self._answer
        if answer is None:
            return [TextPiece(text)] if text else []
        pieces = answer.feed(text)
        if last:
            pieces += answer.finish()
        if not self._called:
            self._called = any(isinstance(p, ToolCallStart) for p in pieces)
        return pieces

    def _emit(self, pieces: list[Piece], token: TokenInfo | None) -> bytes:
        """Pieces in the client's format (``token``: the last token's details, for logprobs)."""
        job, out = self._job, b""
        if job.reading is not None and isinstance(job.fmt, ChatFormat):
            return job.fmt.piece_events(pieces)
        for piece in pieces:
            if isinstance(piece, TextPiece):
                if job.params.logprobs:
                    out += encode_event(job.fmt.text(piece.text, token, logprobs=True))
                else:
                    out += job.fmt.text_event(piece.text)
        return out

    def _count(self) -> None:
        """The usage, from TGI's last event when it reports it, else estimated."""
        last, job = self._last, self._job
        prompt_tokens = last.prompt_tokens if last is not None else None
        completion_tokens = last.completion_tokens if last is not None else None
        self.prompt_tokens = prompt_tokens or estimate_tokens(job.prompts[0])
        self.completion_tokens = completion_tokens or estimate_tokens("".join(self._produced))

    def _rest(self) -> bytes:
        """What the stop scanner (and the answer parser) still held, emitted; the finish
        reason set for the calls read."""
        rest = self._scanner.flush()
        if rest:
            self._produced.append(rest)
        reading = self._job.reading
        if reading is None:
            return self._emit(self._pieces(rest), None) if rest else b""
        out = self._emit(self._pieces(rest, last=True), None)
        self._finish = reading.finish_reason(self._finish, called=self._called)
        return out

    def finish(self) -> bytes:
        job, fmt = self._job, self._job.fmt
        out = [self._rest(), encode_event(fmt.finish(self._finish))]
        self._count()
        if job.include_usage:
            usage = Usage(
                self.prompt_tokens, self.completion_tokens,
                self.prompt_tokens + self.completion_tokens,
            )  # fmt: skip
            out.append(encode_event(fmt.usage(usage)))
        out.append(DONE)
        return b"".join(out)

    def failure(self, error: ErrorBody) -> bytes:
        return error_events(error)


class Replay:
    """A whole answer sent as a stream (the pipeline cannot stream)."""

    __slots__ = (
        "_generation", "_job", "_usage", "complete", "completion_tokens", "done",
        "prompt_tokens", "tokens",
    )  # fmt: skip

    def __init__(self, job: Job, generation: Generation, usage: Usage) -> None:
        self._job, self._generation, self._usage = job, generation, usage
        self.complete = self.done = True
        self.tokens = 0
        self.prompt_tokens, self.completion_tokens = usage.prompt_tokens, usage.completion_tokens

    def first(self) -> bytes:
        first = self._job.fmt.first()
        return encode_event(first) if first is not None else b""

    def feed(self, data: bytes) -> bytes:  # pragma: no cover - a replay reads no upstream
        return b""

    def finish(self) -> bytes:
        fmt, generation = self._job.fmt, self._generation
        self.tokens = 1
        if isinstance(fmt, ChatFormat) and self._job.reading is not None:
            out = [fmt.piece_events(pieces_of(generation))]
        else:
            out = [fmt.text_event(generation.text)] if generation.text else []
        out.append(encode_event(fmt.finish(generation.finish_reason)))
        if self._job.include_usage:
            out.append(encode_event(fmt.usage(self._usage)))
        out.append(DONE)
        return b"".join(out)

    def failure(self, error: ErrorBody) -> bytes:  # pragma: no cover - nothing can fail
        return error_events(error)
