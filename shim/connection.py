"""Client connections: uvicorn's httptools protocol with a deadline for a request's headers,
the uvicorn options ``shim serve`` runs with, and the accept loop of its listening sockets.

uvicorn (0.54) bounds only the idle time *between* requests (``timeout_keep_alive``, armed once
a response is complete): a connection that never sends a byte, or sends its headers a byte at
a time (slowloris), is held open forever. ``HttpProtocol`` closes it once ``header_timeout``
seconds passed without complete headers, counted from the connection (first request) or from
the request's first byte (later requests on a keep-alive connection).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shim.config import ServerConfig

log = logging.getLogger("uvicorn.error")

#: Seconds an idle keep-alive connection is kept between requests (uvicorn's default, explicit).
KEEP_ALIVE_TIMEOUT = 5
#: Seconds before accepting again after an accept failed (asyncio's own delay).
ACCEPT_RETRY_DELAY = 1.0


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the header deadline."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        # Between a request's first byte (or the connection's start) and its headers' end.
        self._awaiting_headers = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Armed only when headers are still incomplete after a read: a request whose headers
        # arrive in one read (nearly all) never creates a timer.
        if self._awaiting_headers and self._header_deadline is None:
            self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if not self.transport.is_closing():
            self._header_deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expire(self) -> None:
        self._header_deadline = None
        if self._awaiting_headers and not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(server: ServerConfig) -> dict[str, Any]:
    """How every connection is served (``shim serve``; the tests use the same)."""
    return {
        # A partial of a module-level class: picklable, for the processes of `--workers N`.
        "http": functools.partial(HttpProtocol, header_timeout=server.header_timeout),
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": int(server.drain_timeout),
    }


class Acceptor:
    """A listening socket served by shim's own accept loop: every pending connection is
    accepted on each readiness event (as asyncio's own loop does), then handed to the event
    loop as an accepted socket.

    Under uvloop, libuv accepts one connection per event-loop iteration (since libuv 1.45,
    libuv PR 3696). Measured with ``python -m bench`` (``streams_1000``): while 500 streams
    kept the loop busy, the other 500 connections of a burst waited in the listen queue at
    20-50 accepts per second, and their first tokens came up to 7-8 s late.
    """

    __slots__ = ("_backlog", "_factory", "_loop", "_opening", "_retry", "sock")

    def __init__(
        self, sock: socket.socket, factory: Callable[[], asyncio.Protocol], *, backlog: int
    ) -> None:
        self.sock = sock
        self._factory = factory
        self._backlog = backlog
        self._loop = asyncio.get_running_loop()
        # The hand-overs in progress (a task each; kept so none is collected mid-way).
        self._opening: set[asyncio.Task[Any]] = set()
        # The resumption after a failed accept, while one is pending.
        self._retry: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        sock.listen(backlog)
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(self._backlog):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of file descriptors (or the like): pause, as asyncio does, rather than
                # spin on a socket that stays readable.
                log.error("accept failed: %s; retrying in %gs", exc, ACCEPT_RETRY_DELAY)
                self._loop.remove_reader(self.sock.fileno())
                self._retry = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._open(conn))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    async def _open(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:
            conn.close()  # the client left before its transport was made

    def _resume(self) -> None:
        self._retry = None
        if self.sock.fileno() != -1:
            self._loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting (the socket itself is closed by its owner)."""
        if self._retry is not None:  # a paused acceptor must not resume after its close
            self._retry.cancel()
            self._retry = None
        if self.sock.fileno() != -1:
            self._loop.remove_reader(self.sock.fileno())

    async def wait_closed(self) -> None:
        return None


class Server(uvicorn.Server):
    """uvicorn's server on the sockets it is given, each served by an ``Acceptor``."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's startup with no listeners of its own: the app's lifespan, then ``started``.
        await super().startup(sockets=[])
        config = self.config
        # As uvicorn makes its protocols (its own factory is local to its startup).
        protocol: Callable[..., asyncio.Protocol] = config.http_protocol_class
        factory = functools.partial(
            protocol, config=config, server_state=self.server_state, app_state=self.lifespan.state
        )
        # uvicorn only calls ``close()`` and ``wait_closed()`` on its servers.
        acceptors = [Acceptor(s, factory, backlog=config.backlog) for s in sockets or ()]
        self.servers = acceptors  # type: ignore[assignment]
