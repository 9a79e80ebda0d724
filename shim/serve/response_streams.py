"""Responses API streams: per protocol, the translator from the upstream's stream to the
events (``adapters.response_stream`` writes them), and ``stored``, the relay's ending that
stores the response before its terminal event goes out.

The relay awaits its ``ending`` (the save) once the last events are made and sends them after
it; the terminal event (``response.completed`` or ``response.incomplete``) is held back until
then, so that a store that fails makes it ``response.failed`` instead and the stream still
ends cleanly (the client learns that the response cannot be retrieved or continued).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from shim.adapters import openai_answer, openai_compat
from shim.adapters._result import Generation, Piece, TokenInfo
from shim.adapters.response_stream import ResponseStream
from shim.context import RequestContext
from shim.errors import ErrorBody, RateLimitError, ShimError, StateUnavailableError
from shim.openai import responses as rs
from shim.serve.formats import pieces_of
from shim.serve.job import Job
from shim.serve.rendered_streams import RenderedStream

log = logging.getLogger("shim")
#: Stores the finished (or failed) response; ``None`` is a stream that made none.
Save = Callable[[rs.Response | None], Awaitable[None]]


def stored(
    events: ResponseStream, save: Save, ctx: RequestContext
) -> Callable[[], Awaitable[bytes]]:
    """A Responses stream's ``Relay.ending``: the response stored, then its terminal event,
    or ``response.failed`` when the store failed (the stream still ends cleanly)."""

    async def store() -> bytes:
        try:
            await save(events.response)
        except StateUnavailableError as exc:
            log.warning("%s: a streamed response was not stored: %s", ctx.model, exc.message)
            ctx.error_reason = "state_unavailable"
            return events.fail(
                StateUnavailableError(
                    f"The response was not stored (state_unavailable), so it cannot be "
                    f"retrieved or continued: {exc.message}"
                )
            )
        return events.end()

    return store


def _failure(error: ErrorBody) -> ShimError:
    """A stream's failure (scrubbed) as ``response.failed`` reports it."""
    detail = error.error
    kind = RateLimitError if detail.type == "rate_limit_error" else ShimError
    return kind(detail.message, code=detail.code)


class RenderedEvents(RenderedStream):
    """TGI's stream as Responses API events: the chat path's stream (stops, counts), its
    pieces written by a ``ResponseStream``."""

    __slots__ = ("events",)

    def __init__(self, job: Job, events: ResponseStream) -> None:
        super().__init__(job)
        self.events = events

    def first(self) -> bytes:
        return self.events.start()

    def _emit(self, pieces: list[Piece], token: TokenInfo | None) -> bytes:
        feed = self.events.feed
        return b"".join([feed(piece) for piece in pieces])

    def finish(self) -> bytes:
        out = self._rest()
        self._count()
        return out + self.events.finish(
            finish_reason=self._finish,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )

    def failure(self, error: ErrorBody) -> bytes:
        return self.events.fail(_failure(error))


class Replayed:
    """A whole answer sent as Responses API events (the pipeline cannot stream)."""

    __slots__ = ("_generation", "completion_tokens", "events", "prompt_tokens", "tokens")

    complete = done = True

    def __init__(self, events: ResponseStream, generation: Generation) -> None:
        self.events, self._generation = events, generation
        self.tokens = 0
        self.prompt_tokens = generation.prompt_tokens or 0
        self.completion_tokens = generation.completion_tokens or 0

    def first(self) -> bytes:
        return self.events.start()

    def feed(self, data: bytes) -> bytes:  # pragma: no cover - a replay reads no upstream
        return b""

    def finish(self) -> bytes:
        self.tokens = 1
        out = b"".join([self.events.feed(piece) for piece in pieces_of(self._generation)])
        return out + self.events.finish(
            finish_reason=self._generation.finish_reason,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )

    def failure(self, error: ErrorBody) -> bytes:  # pragma: no cover - nothing can fail
        return self.events.fail(_failure(error))


class PassthroughEvents:
    """An OpenAI-speaking upstream's chat chunks as Responses API events. Read to the end:
    the usage chunk comes after the one that finishes the choice."""

    __slots__ = (
        "_prompt_estimate", "_reader", "complete", "completion_tokens", "events",
        "prompt_tokens", "tokens",
    )  # fmt: skip

    done = False

    def __init__(self, events: ResponseStream, prompt_estimate: int) -> None:
        self.events = events
        self._reader = openai_answer.ChunkReader()
        self._prompt_estimate = prompt_estimate
        self.complete = False
        self.tokens = self.prompt_tokens = self.completion_tokens = 0

    def first(self) -> bytes:
        return self.events.start()

    def feed(self, data: bytes) -> bytes:
        reader = self._reader
        pieces = reader.feed(openai_compat.decode(data))
        if pieces:
            self.tokens += 1
        out = b"".join([self.events.feed(piece) for piece in pieces])
        self.complete = reader.finish_reason is not None
        return out

    def finish(self) -> bytes:
        usage = self._reader.usage
        if usage is not None:
            self.prompt_tokens, self.completion_tokens = usage
        else:
            self.prompt_tokens, self.completion_tokens = self._prompt_estimate, self.tokens
        return self.events.finish(
            finish_reason=self._reader.finish_reason or "stop",
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )

    def failure(self, error: ErrorBody) -> bytes:
        return self.events.fail(_failure(error))
