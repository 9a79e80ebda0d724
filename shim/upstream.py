"""The one upstream HTTP client, and how a request reaches an upstream: endpoint choice,
retries with backoff, waiting out a loading model, cooldown of failing endpoints.

Knows nothing of OpenAI or HF schemas: bytes go out, an ``httpx.Response`` comes back, and
any failure is a ``shim.errors.UpstreamError``. The transport is chosen in ``make_client``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import httpx

from shim.errors import (
    ShimError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    invalid_response,
    map_transport_errors,
    parse_upstream_error,
    retry_after_seconds,
    transport_error,
)
from shim.streaming import iter_sse_batches

if TYPE_CHECKING:
    from shim.context import RequestContext
    from shim.routing import Endpoint, Route

log = logging.getLogger("shim.upstream")
T = TypeVar("T")

# Keep-alive connections are what make a proxy fast; LLM traffic holds many at once.
POOL_LIMITS = httpx.Limits(max_connections=1024, max_keepalive_connections=256, keepalive_expiry=60)
BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
# A Retry-After longer than this is returned to the client instead of waited out.
RETRY_AFTER_CAP = 10.0
# Longest single sleep while waiting for a loading model.
LOADING_SLEEP_CAP = 20.0


def default_transport() -> httpx.AsyncBaseTransport:
    """The transport, chosen here and only here: shim's own over aiohttp (3-4x httpcore's
    throughput on this kind of machine; README "Performance"). Tests pass an
    ``httpx.MockTransport`` to ``create_app`` instead."""
    from shim.transport import AiohttpTransport

    return AiohttpTransport(limits=POOL_LIMITS)


class Upstream:
    """Sends requests for routes; owns retry, loading and failover policy.

    Holds the process's one ``httpx.AsyncClient``. Proxied POSTs go straight to its transport
    with a ready ``httpx.Request``: the client's auth, redirect and cookie machinery (none of
    which a proxy wants) measurably cost throughput.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.transport = transport if transport is not None else default_transport()
        self.client = httpx.AsyncClient(
            transport=self.transport,
            limits=POOL_LIMITS,
            timeout=httpx.Timeout(300.0, connect=10.0),
            follow_redirects=False,
            trust_env=False,
        )
        # Called with (model, reason) for every failed attempt (the upstream-errors metric).
        self.on_error = on_error

    async def aclose(self) -> None:
        await self.client.aclose()

    async def post(
        self,
        route: Route,
        path: str,
        body: bytes,
        ctx: RequestContext | None = None,
        *,
        parse: Callable[[bytes], T],
    ) -> Answer[T]:
        """POST, read the whole answer (within the route's ``timeout``) and ``parse`` it (a pure
        function). An answer that does not parse is a failed attempt: counted, not retried, and
        not a success of the endpoint."""
        result = await self._send(route, path, body, ctx, stream=False, parse=parse)
        assert isinstance(result, Answer)
        return result

    async def open_stream(
        self,
        route: Route,
        path: str,
        body: bytes,
        ctx: RequestContext | None = None,
        *,
        parse: Callable[[bytes], T],
    ) -> StreamStart[T]:
        """POST, wait for a 2xx status and the first events, and ``parse`` the first (as
        ``post`` does: an error event or garbage fails the attempt, before the client got a
        byte). The caller must ``aclose`` the stream."""
        result = await self._send(route, path, body, ctx, stream=True, parse=parse)
        assert isinstance(result, StreamStart)
        return result

    async def get(self, url: str, *, headers: Mapping[str, str], limit: float) -> httpx.Response:
        """A plain GET within ``limit`` seconds (startup: TEI /info, the Hub; health probes)."""
        with map_transport_errors(url.split("?")[0]):
            return await self.client.get(url, headers=headers, timeout=limit)

    async def _send(
        self,
        route: Route,
        path: str,
        body: bytes,
        ctx: RequestContext | None,
        *,
        stream: bool,
        parse: Callable[[bytes], Any],
    ) -> Answer[Any] | StreamStart[Any]:
        retries_left = route.retries
        loading_deadline = time.monotonic() + route.wait_for_model
        loading_retry = False
        # Whether this request leads the wake-up of a loading model (others wait for it).
        leading = False
        failed: set[Endpoint] = set()
        attempt = 0
        try:
            while True:
                if not leading and route.waking:
                    await route.wait_awake(loading_deadline - time.monotonic())
                    loading_retry = True
                endpoint = route.pick_endpoint(avoid=failed)
                started = time.perf_counter()
                # When the upstream answered: parsing is shim's time, not the upstream's.
                answered = 0.0
                try:
                    response, content = await self._attempt(
                        route, endpoint, path, body, stream=stream, loading_retry=loading_retry
                    )
                    answered = time.perf_counter()
                    result: Answer[Any] | StreamStart[Any]
                    if stream:
                        result = await self._start(route, endpoint, path, response, ctx, parse)
                    else:
                        result = Answer(response.headers, parse(content))
                    endpoint.record_success()
                    return result
                except UpstreamUnavailableError as exc:
                    self._count(route, exc)
                    remaining = loading_deadline - time.monotonic()
                    if remaining <= 0:
                        exc.retry_after = max(exc.retry_after or 0.0, 1.0)
                        raise
                    if not leading and route.waking:
                        continue  # someone else is waking it: wait for them at the top
                    if not leading:
                        leading = route.begin_waking()
                        log.info(
                            "%s: upstream is loading; waiting up to %.0fs", route.name, remaining
                        )
                    hint = 2.0 if exc.retry_after is None else exc.retry_after
                    delay = min(hint, LOADING_SLEEP_CAP, remaining)
                    await asyncio.sleep(max(0.05, delay))
                    loading_retry = True
                except UpstreamError as exc:
                    self._count(route, exc)
                    if not exc.retryable:
                        raise
                    endpoint.record_failure(route.cooldown_after, route.cooldown)
                    failed.add(endpoint)
                    backoff = _backoff(attempt, exc.retry_after) if retries_left > 0 else None
                    if backoff is None:
                        exc.exhausted = route.retries > 0
                        raise
                    retries_left -= 1
                    attempt += 1
                    log.info(
                        "%s: retrying after %s in %.2fs (%d left)",
                        route.name,
                        exc.reason,
                        backoff,
                        retries_left,
                    )
                    await asyncio.sleep(backoff)
                finally:
                    if ctx is not None:
                        ctx.upstream_seconds += (answered or time.perf_counter()) - started
        finally:
            if leading:
                route.end_waking()

    @staticmethod
    async def _start(
        route: Route,
        endpoint: Endpoint,
        path: str,
        response: httpx.Response,
        ctx: RequestContext | None,
        parse: Callable[[bytes], T],
    ) -> StreamStart[T]:
        """The first events of an opened stream, the first parsed; on any failure the stream
        is closed and the error raised."""
        stream = OpenStream(
            response,
            endpoint,
            endpoint.display + path,
            ctx,
            first_token_timeout=route.first_token_timeout,
            idle_timeout=route.idle_timeout,
        )
        batch = await stream.first_batch()
        try:
            first = parse(batch[0])
        except BaseException:
            await stream.aclose()
            raise
        return StreamStart(stream, first, batch[1:])

    def _count(self, route: Route, exc: UpstreamError) -> None:
        if self.on_error is not None:
            self.on_error(route.name, exc.reason)

    async def _attempt(
        self,
        route: Route,
        endpoint: Endpoint,
        path: str,
        body: bytes,
        *,
        stream: bool,
        loading_retry: bool,
    ) -> tuple[httpx.Response, bytes]:
        """One try: the response, and its whole body unless ``stream``."""
        headers = route.loading_raw_headers if loading_retry else route.raw_headers
        url = endpoint.url(path)
        timeout = route.stream_extensions if stream else route.request_extensions
        limit = route.first_token_timeout if stream else route.timeout
        endpoint.in_flight += 1
        response: httpx.Response | None = None
        content = b""
        # A stream keeps counting as in flight until OpenStream.aclose().
        keep_counting = False
        try:
            async with asyncio.timeout(limit):
                with map_transport_errors(endpoint.display + path):
                    # Headers ready-made and the body as a stream: httpx's own header
                    # defaulting (Host, Content-Length) was a measured 15% of a request.
                    request = httpx.Request(
                        "POST",
                        url,
                        headers=[
                            (b"host", endpoint.host),
                            (b"content-length", str(len(body)).encode()),
                            *headers,
                        ],
                        stream=httpx.ByteStream(body),
                        extensions=timeout,
                    )
                    request.read()
                    response = await self.transport.handle_async_request(request)
                    if response.status_code >= 400:
                        error_body = await response.aread()
                        raise parse_upstream_error(
                            response.status_code,
                            error_body,
                            retry_after=retry_after_seconds(
                                response.headers.get("retry-after"), now=time.time()
                            ),
                        )
                    if not stream:
                        content = await _read_all(response)
            keep_counting = stream
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"The upstream {endpoint.display} did not answer within {limit:g}s."
            ) from None
        finally:
            if not keep_counting:
                endpoint.in_flight -= 1
                if response is not None:
                    await response.aclose()
        assert response is not None
        return response, content


async def fan_out(ctx: RequestContext, calls: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run upstream calls concurrently; results in order. The first failure cancels the rest
    and is raised (nothing partial). Time waiting on the upstream is the wall-clock span of the
    calls, not their sum, so ``shim_overhead_seconds`` stays true for concurrent calls."""
    before, started = ctx.upstream_seconds, time.perf_counter()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except* ShimError as errors:
        raise errors.exceptions[0] from None
    finally:
        ctx.upstream_seconds = before + (time.perf_counter() - started)
    return [task.result() for task in tasks]


class Answer(NamedTuple, Generic[T]):
    """A whole upstream answer: its headers, and its body as parsed."""

    headers: httpx.Headers
    value: T

    def count_header(self, name: str) -> int | None:
        """A token-count header (TGI's ``x-prompt-tokens``, TEI's ``x-compute-tokens``): plain
        ASCII digits of a plausible length, else None (``"²".isdigit()`` is true, and int()
        refuses 4,300+ digits)."""
        value = self.headers.get(name)
        if value is not None and value.isascii() and value.isdigit() and len(value) <= 15:
            return int(value)
        return None


class StreamStart(NamedTuple, Generic[T]):
    """An opened stream: its first event as parsed, and the events that came with it."""

    stream: OpenStream
    first: T
    rest: list[bytes]


def _compressed(response: httpx.Response) -> bool:
    """Whether the body needs httpx's decoders (aiohttp offers gzip, which pays off for large
    embedding answers from remote endpoints); else it is read straight from the transport's
    stream, as httpx's decoder chain is a measurable cost."""
    encoding = response.headers.get("content-encoding")
    return bool(encoding) and encoding != "identity"


async def _read_all(response: httpx.Response) -> bytes:
    """The whole body (the caller closes the response)."""
    if _compressed(response):
        return await response.aread()
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    return b"".join([chunk async for chunk in stream])


def _backoff(attempt: int, retry_after: float | None) -> float | None:
    """Exponential backoff with jitter; None when the upstream asks for a longer pause."""
    if retry_after is not None and retry_after > RETRY_AFTER_CAP:
        return None
    delay: float = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.5)
    return max(delay, retry_after or 0.0)


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
        "_endpoint",
        "_expired",
        "_first_limit",
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
        endpoint: Endpoint,
        target: str,
        ctx: RequestContext | None,
        *,
        first_token_timeout: float,
        idle_timeout: float,
    ) -> None:
        self.response = response
        self.target = target
        self._endpoint = endpoint
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
        """The first events; on any failure the stream is closed and the error raised, before
        the client got a byte."""
        try:
            first = await anext(self.batches(), None)
            if first is None:
                raise invalid_response("the stream ended before any event")
            return first
        except BaseException:
            await self.aclose()
            raise

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
        """Body chunks as they arrive (see ``_compressed``); waiting counts as upstream time."""
        response = self.response
        if _compressed(response):
            iterator = response.aiter_bytes().__aiter__()
        else:
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            iterator = stream.__aiter__()
        ctx = self._ctx
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + self._first_limit, self._watch)
        while True:
            started = time.perf_counter()
            self._wait_started = loop.time()
            self._waits += 1
            # The first read runs in the request's task, later ones in the response's.
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
        generation stops). Safe to call twice, and on cancellation."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._endpoint.in_flight -= 1
        await self.response.aclose()
