"""The one upstream HTTP client: an attempt loop that applies the retry policy
(``shim.upstream.retry``) over the balancer's choice of upstream (``shim.upstream.balancer``).

Knows nothing of OpenAI or HF schemas: bytes go out, an ``Answer`` or an ``OpenStream`` comes
back, and any failure is a ``shim.errors.UpstreamError``. The transport is chosen in
``default_transport``; tests inject theirs through ``create_app``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import httpx

from shim.clock import Clock
from shim.context import RequestContext
from shim.errors import ShimError, UpstreamError, UpstreamTimeoutError
from shim.held import Held
from shim.route import Route
from shim.upstream import retry
from shim.upstream.balancer import Pool, UpstreamState
from shim.upstream.failures import (
    map_transport_errors,
    parse_upstream_error,
    retry_after_seconds,
)
from shim.upstream.stream import OpenStream, compressed, raw_chunks
from shim.upstream.transport import AiohttpTransport
from shim.urls import Upstream

log = logging.getLogger("shim.upstream")
T = TypeVar("T")

#: Bytes of an upstream error body read (its message is in the first few hundred).
ERROR_BODY_LIMIT = 64 * 1024
# Keep-alive connections are what make a proxy fast; LLM traffic holds many at once.
POOL_LIMITS = httpx.Limits(max_connections=1024, max_keepalive_connections=256, keepalive_expiry=60)


def default_transport() -> httpx.AsyncBaseTransport:
    """The transport, chosen here and only here: shim's own over aiohttp (3-4x httpcore's
    throughput on this kind of machine; README "Performance"). Tests pass an
    ``httpx.MockTransport`` to ``create_app`` instead."""
    return AiohttpTransport(limits=POOL_LIMITS)


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


class Client:
    """Sends requests for routes; applies the retry, loading and failover policy.

    Holds the process's one ``httpx.AsyncClient``. Proxied POSTs go straight to its transport
    with a ready ``httpx.Request``: the client's auth, redirect and cookie machinery (none of
    which a proxy wants) measurably cost throughput.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        clock: Clock,
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
        self.clock = clock
        # Called with (model, reason) for every failed attempt (the upstream-errors metric).
        self.on_error = on_error

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(
        self,
        route: Route,
        pool: Pool,
        path: str,
        body: bytes,
        ctx: RequestContext | None = None,
        *,
        parse: Callable[[bytes], T],
        stream: bool = False,
    ) -> Answer[T] | StreamStart[T]:
        """POST for ``route``, and ``parse`` (a pure function) the whole answer, or with
        ``stream`` the first event once a 2xx status and the first events arrived (the caller
        must ``aclose`` the stream). An answer that does not parse is a failed attempt:
        counted, retried only if the error says so, and no success of the upstream."""
        return await self._send(route, pool, path, body, ctx, parse=parse, stream=stream)

    async def get(self, url: str, *, headers: Mapping[str, str], limit: float) -> httpx.Response:
        """A plain GET within ``limit`` seconds (TEI /info, the Hub, health probes)."""
        with map_transport_errors(url.split("?")[0]):
            return await self.client.get(url, headers=headers, timeout=limit)

    async def _send(
        self,
        route: Route,
        pool: Pool,
        path: str,
        body: bytes,
        ctx: RequestContext | None,
        *,
        parse: Callable[[bytes], T],
        stream: bool,
    ) -> Answer[T] | StreamStart[T]:
        tries = retry.Tries(route, pool, self.clock)
        try:
            while True:
                await tries.ready()
                index = pool.pick(tries.failed, self.clock.monotonic())
                started, tries.answered = time.perf_counter(), 0.0
                try:
                    return await self._attempt(
                        route, route.upstreams[index], pool.states[index], path, body,
                        ctx=ctx, parse=parse, stream=stream, tries=tries,
                    )  # fmt: skip
                except UpstreamError as exc:
                    self._count(route, exc)
                    delay = tries.after(exc, index)
                    if delay is not None:
                        await self.clock.sleep(delay)
                finally:
                    if ctx is not None:
                        # Once the upstream answered, parsing is shim's time, not the upstream's.
                        ctx.upstream_seconds += (tries.answered or time.perf_counter()) - started
        finally:
            tries.close()

    def _count(self, route: Route, exc: UpstreamError) -> None:
        if self.on_error is not None:
            self.on_error(route.name, exc.reason)

    async def _attempt(
        self,
        route: Route,
        upstream: Upstream,
        state: UpstreamState,
        path: str,
        body: bytes,
        *,
        ctx: RequestContext | None,
        parse: Callable[[bytes], T],
        stream: bool,
        tries: retry.Tries,
    ) -> Answer[T] | StreamStart[T]:
        """One try: the whole answer, or the open stream, which then holds what this attempt
        acquired (the upstream's in-flight count and the response) until its ``aclose``."""
        headers = route.loading_raw_headers if tries.loading else route.raw_headers
        limit = route.first_token_timeout if stream else route.timeout
        target = upstream.display + path
        async with Held() as held:
            state.in_flight += 1
            held.callback(_leave, state)
            try:
                async with asyncio.timeout(limit):
                    with map_transport_errors(target):
                        # Headers ready-made and the body as a stream: httpx's own header
                        # defaulting (Host, Content-Length) was a measured 15% of a request.
                        request = httpx.Request(
                            "POST",
                            upstream.url(path),
                            headers=[
                                (b"host", upstream.host),
                                (b"content-length", str(len(body)).encode()),
                                *headers,
                            ],
                            stream=httpx.ByteStream(body),
                            extensions=route.stream_extensions
                            if stream
                            else route.request_extensions,
                        )
                        request.read()
                        response = await self.transport.handle_async_request(request)
                        held.push_async(response.aclose)
                        if response.status_code >= 400:
                            retry_after = response.headers.get("retry-after")
                            raise parse_upstream_error(
                                response.status_code,
                                await _read_error(response),
                                retry_after=retry_after_seconds(retry_after, now=time.time()),
                            )
                        content = b"" if stream else await _read_all(response)
            except TimeoutError:
                raise UpstreamTimeoutError(
                    f"The upstream {upstream.display} did not answer within {limit:g}s."
                ) from None
            tries.answered = time.perf_counter()
            if not stream:
                answer = Answer(response.headers, parse(content))
                state.succeeded()
                return answer
            source = OpenStream(
                response,
                held.handover(),
                target=target,
                ctx=ctx,
                first_token_timeout=route.first_token_timeout,
                idle_timeout=route.idle_timeout,
            )
        start = await _first_events(source, parse)
        state.succeeded()
        return start


async def _first_events(source: OpenStream, parse: Callable[[bytes], T]) -> StreamStart[T]:
    """The stream's first events, the first parsed (waiting for them counts as upstream time:
    the stream counts it); on any failure the stream is closed and the error raised."""
    try:
        batch = await source.first_batch()
        return StreamStart(source, parse(batch[0]), batch[1:])
    except BaseException:
        await source.aclose()
        raise


def _leave(state: UpstreamState) -> None:
    state.in_flight -= 1


async def _read_error(response: httpx.Response) -> bytes:
    """An error answer's body, up to ``ERROR_BODY_LIMIT`` (enough to explain it; an upstream
    that sends more, or without end, is not read further: the connection is closed)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in raw_chunks(response):
        parts.append(chunk)
        size += len(chunk)
        if size >= ERROR_BODY_LIMIT:
            break
    return b"".join(parts)[:ERROR_BODY_LIMIT]


async def _read_all(response: httpx.Response) -> bytes:
    """The whole body (the caller closes the response)."""
    if compressed(response):
        return await response.aread()
    return b"".join([chunk async for chunk in raw_chunks(response)])


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
