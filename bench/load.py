"""The benchmark's own load generators, for what wrk cannot do.

- ``Connection``: a minimal HTTP/1.1 keep-alive client on an asyncio Protocol and httptools,
  timing each response (first token, last byte) without parsing JSON.
- ``run_streams``: many concurrent SSE streams held open (the 1,000-stream scenario), each
  connection looping until the deadline; records time to first token and stream duration.
- ``run_fanout``: one large embeddings request through shim, interleaved with the same inputs
  sent directly to the fake as ``max_batch_size`` concurrent calls (the "slowest upstream call").
- ``run_aiohttp``: a fixed-concurrency, closed-loop generator on aiohttp: the fallback when wrk
  cannot be installed.

Every loop is bounded by a deadline and a request count.
"""

from __future__ import annotations

import asyncio
import re
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

import httptools

from bench.stats import LoadResult, Percentiles, percentiles

#: A content token in a TGI event (``"text":" t0"``) or an OpenAI chunk (``"content":" t0"``);
#: the role-only first chunk (``"content":""``) does not match.
TOKEN_MARKER = re.compile(rb'"(?:text|content)":"[^"]')
MAX_REQUESTS = 1_000_000


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def build_request(host: str, port: int, path: str, body: bytes, method: str = "POST") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass(slots=True)
class Sample:
    """One response: status, and perf_counter times of its start, first token and end."""

    status: int
    start: float
    end: float
    first_token: float | None = None
    body: bytes = b""

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.start


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Sample] | None = None
        self._sample: Sample | None = None
        self._keep_body = False
        self._body: list[bytes] = []
        self._tail = b""
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def request(self, raw: bytes, *, keep_body: bool = False) -> Sample:
        if self.closed or self._transport is None:
            raise ConnectionError("connection closed")
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._keep_body = keep_body
        self._body = []
        self._tail = b""
        self._sample = Sample(status=0, start=time.perf_counter(), end=0.0)
        self._transport.write(raw)
        return await self._waiter

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(f"connection lost: {exc or 'closed by peer'}"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError(f"bad response: {exc}"))
            self.close()

    # --- httptools callbacks -----------------------------------------------------------------

    def on_headers_complete(self) -> None:
        if self._sample is not None:
            self._sample.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        sample = self._sample
        if sample is None:
            return
        if sample.first_token is None:
            if TOKEN_MARKER.search(self._tail + body):
                sample.first_token = time.perf_counter()
            else:
                self._tail = body[-16:]
        if self._keep_body:
            self._body.append(body)

    def on_message_complete(self) -> None:
        sample, waiter = self._sample, self._waiter
        if sample is None or waiter is None or waiter.done():
            return
        sample.end = time.perf_counter()
        if self._keep_body:
            sample.body = b"".join(self._body)
        waiter.set_result(sample)
        if not self._parser.should_keep_alive():
            self.close()


async def request_once(host: str, port: int, raw: bytes, *, limit: float = 30.0) -> Sample:
    """One request on a fresh connection, body kept (preflight checks); ``limit`` seconds."""
    conn = await Connection.open(host, port)
    try:
        async with asyncio.timeout(limit):
            return await conn.request(raw, keep_body=True)
    finally:
        conn.close()


# --- many concurrent streams ------------------------------------------------------------------


@dataclass
class StreamResult:
    """Concurrent-stream run: streams finished, failures, TTFT and stream duration (ms)."""

    streams: int
    errors: Counter[str]
    duration: float
    ttft_ms: Percentiles
    total_ms: Percentiles
    peak_open: int
    samples: int = field(default=0)

    def as_load(self) -> LoadResult:
        return LoadResult(
            requests=self.streams,
            errors=dict(self.errors),
            duration=self.duration,
            latency_ms=self.total_ms,
            ttft_ms=self.ttft_ms,
            tool="asyncio-streams",
        )


async def _open_all(host: str, port: int, count: int, errors: Counter[str]) -> list[Connection]:
    async def one() -> Connection | None:
        try:
            return await Connection.open(host, port)
        except OSError as exc:
            errors[f"connect: {type(exc).__name__}"] += 1
            return None

    opened: list[Connection] = []
    # In waves, so a listen backlog is never the thing measured.
    for start in range(0, count, 250):
        wave = await asyncio.gather(*(one() for _ in range(min(250, count - start))))
        opened.extend(c for c in wave if c is not None)
    return opened


async def run_streams(
    host: str,
    port: int,
    raw: bytes,
    *,
    concurrency: int,
    duration: float,
    stream_limit: float = 30.0,
) -> StreamResult:
    """Hold ``concurrency`` streams open for ``duration`` seconds (each connection starts a new
    stream when one ends, until the deadline); every stream is bounded by ``stream_limit``."""
    raise_fd_limit(concurrency * 2 + 256)
    errors: Counter[str] = Counter()
    conns = await _open_all(host, port, concurrency, errors)
    ttfts: list[float] = []
    totals: list[float] = []
    open_now = peak = 0
    started = time.perf_counter()
    deadline = started + duration

    async def worker(conn: Connection) -> None:
        nonlocal open_now, peak
        count = 0
        while time.perf_counter() < deadline and count < MAX_REQUESTS:
            count += 1
            open_now += 1
            peak = max(peak, open_now)
            try:
                async with asyncio.timeout(stream_limit):
                    sample = await conn.request(raw)
            except TimeoutError:
                errors["timeout"] += 1
                conn.close()
                return
            except ConnectionError as exc:
                errors[str(exc).split(":")[0]] += 1
                return
            finally:
                open_now -= 1
            if sample.status != 200:
                errors[f"status {sample.status}"] += 1
                continue
            totals.append(sample.seconds)
            if sample.ttft is None:
                errors["no token"] += 1
            else:
                ttfts.append(sample.ttft)

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for conn in conns:
            conn.close()
    elapsed = time.perf_counter() - started
    return StreamResult(
        streams=len(totals),
        errors=errors,
        duration=elapsed,
        ttft_ms=percentiles([t * 1000 for t in ttfts]),
        total_ms=percentiles([t * 1000 for t in totals]),
        peak_open=peak,
        samples=len(ttfts),
    )


# --- one big embeddings request vs its upstream calls ----------------------------------------


@dataclass
class FanoutResult:
    """Latency (ms) of the large request through the target, and of the slowest of the
    direct upstream calls made in the same round (when measured)."""

    rounds: int
    errors: Counter[str]
    duration: float
    target_ms: Percentiles
    slowest_upstream_ms: Percentiles | None
    added_ms: Percentiles | None


async def run_fanout(
    target: tuple[str, int, bytes] | None,
    direct: tuple[str, int, list[bytes]] | None,
    *,
    rounds: int,
    duration: float,
    request_limit: float = 30.0,
) -> FanoutResult:
    """Alternate, per round: the direct batch calls (all at once, one connection each; the
    slowest is kept), then the one request through the target. Bounded by rounds and time."""
    errors: Counter[str] = Counter()
    target_s: list[float] = []
    slowest_s: list[float] = []
    added_s: list[float] = []
    target_conn = await Connection.open(target[0], target[1]) if target else None
    direct_conns = (
        [await Connection.open(direct[0], direct[1]) for _ in direct[2]] if direct else []
    )
    started = time.perf_counter()
    deadline = started + duration
    done = 0
    try:
        while done < rounds and time.perf_counter() < deadline:
            done += 1
            slowest = None
            if direct is not None:
                async with asyncio.timeout(request_limit):
                    samples = await asyncio.gather(
                        *(c.request(raw) for c, raw in zip(direct_conns, direct[2], strict=True))
                    )
                bad = [s.status for s in samples if s.status != 200]
                if bad:
                    errors[f"direct status {bad[0]}"] += 1
                    continue
                slowest = max(s.seconds for s in samples)
                slowest_s.append(slowest)
            if target_conn is not None and target is not None:
                async with asyncio.timeout(request_limit):
                    sample = await target_conn.request(target[2])
                if sample.status != 200:
                    errors[f"status {sample.status}"] += 1
                    continue
                target_s.append(sample.seconds)
                if slowest is not None:
                    added_s.append(sample.seconds - slowest)
    finally:
        for conn in [*direct_conns, *([target_conn] if target_conn else [])]:
            conn.close()

    def ms(values: list[float]) -> Percentiles | None:
        return percentiles([v * 1000 for v in values]) if values else None

    return FanoutResult(
        rounds=done,
        errors=errors,
        duration=time.perf_counter() - started,
        target_ms=ms(target_s) or ms(slowest_s) or percentiles([]),
        slowest_upstream_ms=ms(slowest_s),
        added_ms=ms(added_s),
    )


# --- sequential overhead, interleaved --------------------------------------------------------


@dataclass
class InterleavedResult:
    """Per round, p50 and p99 (ms) of the target and of the direct call; the overhead is the
    median over rounds of (target - direct), the method for sub-millisecond differences."""

    rounds: int
    per_round: int
    target_p50: list[float]
    direct_p50: list[float]
    target_p99: list[float]
    direct_p99: list[float]

    @staticmethod
    def _median(values: list[float]) -> float:
        ordered = sorted(values)
        mid = len(ordered) // 2
        if not ordered:
            return float("nan")
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    def overhead(self, q: str) -> float:
        target, direct = (
            (self.target_p50, self.direct_p50) if q == "p50" else (self.target_p99, self.direct_p99)
        )
        return self._median([t - d for t, d in zip(target, direct, strict=True)])

    def to_dict(self) -> dict[str, object]:
        return {
            "rounds": self.rounds,
            "per_round": self.per_round,
            "overhead_p50_ms": round(self.overhead("p50"), 4),
            "overhead_p99_ms": round(self.overhead("p99"), 4),
            "target_p50_ms": round(self._median(self.target_p50), 4),
            "direct_p50_ms": round(self._median(self.direct_p50), 4),
            "target_p99_ms": round(self._median(self.target_p99), 4),
            "direct_p99_ms": round(self._median(self.direct_p99), 4),
        }


async def run_interleaved(
    target: tuple[str, int, bytes],
    direct: tuple[str, int, bytes],
    *,
    rounds: int = 7,
    per_round: int = 200,
    warmup: int = 50,
    max_seconds: float = 30.0,
) -> InterleavedResult:
    """Rounds of ``per_round`` sequential requests to the direct call and to the target, in
    alternating order, on one keep-alive connection each; bounded by ``max_seconds``."""
    result = InterleavedResult(0, per_round, [], [], [], [])
    conns = {
        "target": await Connection.open(target[0], target[1]),
        "direct": await Connection.open(direct[0], direct[1]),
    }
    raws = {"target": target[2], "direct": direct[2]}
    deadline = time.perf_counter() + max_seconds

    async def series(which: str, count: int) -> Percentiles:
        times = []
        for _ in range(count):
            sample = await conns[which].request(raws[which])
            if sample.status >= 400:
                raise ConnectionError(f"{which} answered {sample.status}")
            times.append(sample.seconds * 1000)
        return percentiles(times)

    try:
        async with asyncio.timeout(max_seconds + 30):
            await series("direct", warmup)
            await series("target", warmup)
            for i in range(rounds):
                if time.perf_counter() > deadline:
                    break
                order = ("direct", "target") if i % 2 == 0 else ("target", "direct")
                got = {which: await series(which, per_round) for which in order}
                result.target_p50.append(got["target"].p50)
                result.target_p99.append(got["target"].p99)
                result.direct_p50.append(got["direct"].p50)
                result.direct_p99.append(got["direct"].p99)
                result.rounds += 1
    finally:
        for conn in conns.values():
            conn.close()
    return result


# --- fallback closed-loop generator -----------------------------------------------------------


async def run_aiohttp(
    url: str, body: bytes, *, connections: int, duration: float, request_limit: float = 10.0
) -> LoadResult:
    """``connections`` workers, each sending the next request when the last one finished."""
    import aiohttp

    errors: Counter[str] = Counter()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=request_limit)
    started = time.perf_counter()
    deadline = started + duration
    async with aiohttp.ClientSession(
        connector=connector, timeout=client_timeout, trust_env=False
    ) as session:

        async def worker() -> None:
            count = 0
            while time.perf_counter() < deadline and count < MAX_REQUESTS:
                count += 1
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        statuses[response.status] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    bad = sum(n for status, n in statuses.items() if status >= 400)
    if bad:
        errors["status"] += bad
    return LoadResult(
        requests=len(latencies),
        errors=dict(errors),
        duration=elapsed,
        latency_ms=percentiles([t * 1000 for t in latencies]),
        tool="aiohttp",
    )
