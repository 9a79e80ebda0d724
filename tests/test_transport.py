"""shim's transport: the aiohttp → httpx exception table is complete and ordered, and the real
transport against real loopback sockets raises what the table promises."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import inspect
import socket
import struct
import time
from collections.abc import AsyncIterator

import aiohttp
import aiohttp.client_exceptions
import httpx
import pytest
from yarl import URL

from shim.upstream import transport
from shim.upstream.transport import AiohttpTransport, ClosedBeforeResponseError, map_exception
from tests.conftest import free_port, raw_server, read_request

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


# --- the table ---------------------------------------------------------------------------------


def _aiohttp_client_errors() -> list[type[BaseException]]:
    """Every ClientError subclass aiohttp exports (or defines among its client exceptions)."""
    found: set[type[BaseException]] = {TimeoutError}
    for module in (aiohttp, aiohttp.client_exceptions):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, aiohttp.ClientError):
                found.add(obj)
    return sorted(found, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("exc_type", _aiohttp_client_errors(), ids=lambda t: t.__name__)
def test_every_aiohttp_exception_is_mapped(exc_type: type[BaseException]) -> None:
    # Listed by name, not caught by a base class's row: a new aiohttp class needs a decision.
    rows = {row[0]: row[1:] for row in transport.EXCEPTIONS}
    assert exc_type in rows, f"{exc_type.__name__} is not in shim.upstream.transport.EXCEPTIONS"
    for mapped in rows[exc_type]:
        assert issubclass(mapped, httpx.TransportError)


def test_table_is_most_specific_first() -> None:
    classes = [row[0] for row in transport.EXCEPTIONS]
    for i, later in enumerate(classes):
        shadowing = [c.__name__ for c in classes[:i] if issubclass(later, c)]
        assert not shadowing, f"{later.__name__} is unreachable after {shadowing}"


SECRET_URL = URL("http://user:pw@upstream.test/x?api_key=s3cret")
_INFO = aiohttp.RequestInfo(SECRET_URL, "POST", {}, SECRET_URL)  # type: ignore[arg-type]
_KEY = aiohttp.client_reqrep.ConnectionKey("upstream.test", 80, False, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "answered", "expected"),
    [
        (aiohttp.ServerDisconnectedError(), False, ClosedBeforeResponseError),
        (aiohttp.ServerDisconnectedError(), True, httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), False, ClosedBeforeResponseError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), True, httpx.ReadError),
        (aiohttp.ClientConnectorError(_KEY, OSError(111, "refused")), False, httpx.ConnectError),
        (aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "unknown")), False, httpx.ConnectError),
        (
            aiohttp.ConnectionTimeoutError(f"Connection timeout to host {SECRET_URL}"),
            False,
            httpx.ConnectTimeout,
        ),
        (
            aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
            True,
            httpx.ReadTimeout,
        ),
        (TimeoutError(), False, httpx.ReadTimeout),
        (
            aiohttp.ClientPayloadError("Response payload is not completed"),
            True,
            httpx.RemoteProtocolError,
        ),
        (
            aiohttp.ClientResponseError(_INFO, (), status=400, message="Bad status line"),
            False,
            httpx.RemoteProtocolError,
        ),
        (aiohttp.TooManyRedirects(_INFO, ()), False, httpx.RemoteProtocolError),
        (aiohttp.InvalidUrlClientError(SECRET_URL), False, httpx.UnsupportedProtocol),
        (aiohttp.NonHttpUrlClientError(SECRET_URL), False, httpx.UnsupportedProtocol),
        (aiohttp.ClientError(), False, httpx.TransportError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_map_exception(exc: BaseException, answered: bool, expected: type[Exception]) -> None:
    mapped = map_exception(exc, answered=answered)
    assert type(mapped) is expected
    message = str(mapped)
    assert message
    assert "pw" not in message and "s3cret" not in message and "?" not in message


# --- real sockets ------------------------------------------------------------------------------


def request(
    url: str, *, read: float | None = 5.0, connect: float = 5.0, pool: float = 5.0
) -> httpx.Request:
    return httpx.Request(
        "POST",
        url,
        content=b'{"inputs":"hi"}',
        extensions={"timeout": httpx.Timeout(read, connect=connect, pool=pool).as_dict()},
    )


@pytest.fixture
async def client() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport(limits=httpx.Limits(max_connections=8, keepalive_expiry=30))
    yield t
    await t.aclose()


async def test_refused_port_is_connect_error_without_credentials_or_query(
    client: AiohttpTransport,
) -> None:
    url = f"http://user:pw@127.0.0.1:{free_port()}/generate?api_key=s3cret"
    with pytest.raises(httpx.ConnectError) as info:
        await client.handle_async_request(request(url))
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
    assert "pw" not in str(info.value) and "s3cret" not in str(info.value)


async def test_server_that_never_answers_is_read_timeout(client: AiohttpTransport) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async with raw_server(silent) as base:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.handle_async_request(request(base + "/generate", read=0.3))
        assert 0.25 <= time.monotonic() - started < 3


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_server_closing_mid_body_is_protocol_or_read_error(
    client: AiohttpTransport, head: bytes
) -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head)
        await writer.drain()

    async with raw_server(truncated) as base:
        response = await client.handle_async_request(request(base))
        assert response.status_code == 200
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await response.aread()
        await response.aclose()


async def test_garbage_status_line_is_remote_protocol_error(client: AiohttpTransport) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    async with raw_server(garbage) as base:
        with pytest.raises(httpx.RemoteProtocolError) as info:
            await client.handle_async_request(request(base))
    assert not isinstance(info.value, ClosedBeforeResponseError)


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_connection_closed_before_any_answer(client: AiohttpTransport, reset: bool) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if reset:  # RST instead of FIN
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async with raw_server(hang_up) as base:
        with pytest.raises(ClosedBeforeResponseError):
            await client.handle_async_request(request(base))


async def test_slow_to_accept_server_is_connect_timeout() -> None:
    # A listener whose accept queue is full and never drained: the SYN goes unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    t = AiohttpTransport(limits=httpx.Limits(max_connections=8))
    try:
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout):
            await t.handle_async_request(request(f"http://127.0.0.1:{port}", connect=0.3))
        assert time.monotonic() - started < 3
    finally:
        await t.aclose()
        for s in (*fillers, listener):
            s.close()


async def test_full_pool_times_out_as_connect_timeout() -> None:
    # aiohttp's `connect` timeout covers the wait for a pool slot and the connect alike, and
    # raises one class for both: a pool timeout is reported as httpx.ConnectTimeout.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    t = AiohttpTransport(limits=httpx.Limits(max_connections=1))
    async with raw_server(silent) as base:
        holder = asyncio.create_task(t.handle_async_request(request(base)))
        await asyncio.sleep(0.2)
        try:
            with pytest.raises(httpx.ConnectTimeout):
                await t.handle_async_request(request(base, pool=0.3, connect=0.3))
        finally:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder
            await t.aclose()


async def test_unfinished_body_closes_the_socket_finished_one_is_reused(
    client: AiohttpTransport,
) -> None:
    connections: list[int] = []
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            head = await read_request(reader)
            if b"/stream" not in head:
                writer.write(OK)
                continue
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(100):  # a long generation, one chunk at a time
                writer.write(b"5\r\ntoken\r\n")
                await writer.drain()
                if await _closed_within(reader, 0.05):
                    closed.set()
                    return
            return

    async with raw_server(handler) as base:
        for _ in range(3):
            response = await client.handle_async_request(request(base + "/whole"))
            assert await response.aread() == b"ok"
            await response.aclose()
        assert len(connections) == 1, "a finished body gives its connection back to the pool"
        response = await client.handle_async_request(request(base + "/stream"))
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        async for chunk in stream:
            assert chunk
            break
        await response.aclose()
        await asyncio.wait_for(closed.wait(), 3)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), seconds) == b""
    except TimeoutError:
        return False


async def test_compressed_body_is_left_for_httpx_to_decode(client: AiohttpTransport) -> None:
    payload = b'{"generated_text": "' + b"x" * 2000 + b'"}'
    packed = gzip.compress(payload)
    seen: list[bytes] = []

    async def gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\n"
            + f"content-length: {len(packed)}\r\n\r\n".encode()
            + packed
        )
        await writer.drain()

    async with raw_server(gzipped) as base:
        response = await client.handle_async_request(request(base))
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
    assert raw == packed  # aiohttp did not decompress
    assert httpx.Response(200, headers=response.headers, content=raw).read() == payload
    assert seen[0].endswith(b'\r\n\r\n{"inputs":"hi"}')  # the body went out as is


def test_transport_is_built_outside_a_running_loop() -> None:
    # The session is created on first use, inside the loop that serves (aiohttp requires it).
    AiohttpTransport(limits=httpx.Limits())


async def test_aclose_closes_pooled_connections() -> None:
    closed = asyncio.Event()

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        if await reader.read(1) == b"":
            closed.set()

    t = AiohttpTransport(limits=httpx.Limits(max_connections=8, keepalive_expiry=30))
    async with raw_server(keep_alive) as base:
        response = await t.handle_async_request(request(base))
        assert await response.aread() == b"ok"
        await response.aclose()
        assert not closed.is_set()  # pooled, kept alive
        await t.aclose()
        await asyncio.wait_for(closed.wait(), 3)
