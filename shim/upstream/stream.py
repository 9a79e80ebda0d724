"""An upstream stream being read: its body as batches of SSE events, a watchdog bounding the
wait for the first event and every later gap, and one ``aclose`` that releases everything the
attempt held (the connection and the upstream's in-flight count).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from shim.context import RequestContext
from shim.errors import UpstreamTimeoutError, invalid_response
from shim.held import Held
from shim.upstream.failures import transport_error
from shim.upstream.sse import iter_sse_batches


def compressed(response: httpx.Response) -> bool:
    """Whether the body needs httpx's decoders (aiohttp offers gzip, which pays off for large
    embedding answers from remote Inference Endpoints); else it is read straight from the
    transport's stream, as httpx's decoder chain is a measurable cost."""
    encoding = response.headers.get("content-encoding")
    return bool(encoding) and encoding != "identity"


def raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it arrives (see ``compressed``)."""
    if compressed(response):
        return response.aiter_bytes().__aiter__()
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    return stream.__aiter__()


class OpenStream:
    """An upstream response whose body is still to be read, event batch by event batch.

    The first wait is bounded by ``first_token_timeout``, every later wait for a chunk by
    ``idle_timeout``: a long healthy stream is never cut. One lazy watchdog timer per stream
    enforces both (a timer per chunk was a measurable cost of every token): reading a chunk only
    records when the wait began, and the timer, when it fires, either re-arms for the current
    wait's deadline or cancels the wait.
    """

    __slots__ = (
        "_batches",
        "_closed",
        "_ctx",
        "_expired",
        "_first_limit",
        "_held",
        "_idle",
        "_reader",
        "_timer",
        "_wait_started",
        "_waits",
        "response",
        "target",
    )

    def __init__(
        self,
        response: httpx.Response,
        held: Held,
        *,
        target: str,
        ctx: RequestContext | None,
        first_token_timeout: float,
        idle_timeout: float,
    ) -> None:
        self.response = response
        self.target = target
        # What the attempt that opened it holds (the response, the in-flight count).
        self._held = held
        self._ctx = ctx
        self._first_limit = first_token_timeout
        self._idle = idle_timeout
        self._closed = False
        self._batches: AsyncIterator[list[bytes]] | None = None
        # The task waiting for a chunk (None between waits), since when, and how many waits.
        self._reader: asyncio.Task[Any] | None = None
        self._wait_started = 0.0
        self._waits = 0
        self._expired = False
        self._timer: asyncio.TimerHandle | None = None

    def batches(self) -> AsyncIterator[list[bytes]]:
        """The ``data`` of the SSE events, a list per network read (one iterator per stream)."""
        if self._batches is None:
            self._batches = iter_sse_batches(self._chunks())
        return self._batches

    async def first_batch(self) -> list[bytes]:
        """The first events (a stream that ends before any is an invalid answer)."""
        first = await anext(self.batches(), None)
        if first is None:
            raise invalid_response("the stream ended before any event")
        return first

    def _limit(self) -> float:
        return self._first_limit if self._waits <= 1 else self._idle

    def _watch(self) -> None:
        """The watchdog: cancel a wait that outlived its limit, else sleep until it could."""
        self._timer = None
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if self._reader is None:
            when = loop.time() + self._idle
        else:
            when = self._wait_started + self._limit()
            if loop.time() >= when:
                self._expired = True
                self._reader.cancel()
                return
        self._timer = loop.call_at(when, self._watch)

    async def _chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; waiting counts as upstream time."""
        iterator = raw_chunks(self.response)
        ctx = self._ctx
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + self._first_limit, self._watch)
        while True:
            started = time.perf_counter()
            self._wait_started = loop.time()
            self._waits += 1
            self._reader = task = asyncio.current_task()
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except httpx.TransportError as exc:
                raise transport_error(exc, self.target) from exc
            except asyncio.CancelledError:
                if not self._expired or task is None:
                    raise
                task.uncancel()
                what = "first token" if self._waits <= 1 else "next chunk"
                raise UpstreamTimeoutError(
                    f"No {what} from the upstream {self.target} within {self._limit():g}s."
                ) from None
            finally:
                self._reader = None
                if ctx is not None:
                    ctx.upstream_seconds += time.perf_counter() - started
            if chunk:
                yield chunk

    async def aclose(self) -> None:
        """Close the upstream connection (an unfinished body closes the socket: paid
        generation stops) and release what the attempt held. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        await self._held.aclose()
