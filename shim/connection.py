"""Client connections: uvicorn's httptools protocol with a deadline for a request's headers,
and the uvicorn options ``shim serve`` runs with.

uvicorn (0.54) bounds only the idle time *between* requests (``timeout_keep_alive``, armed once
a response is complete): a connection that never sends a byte, or sends its headers a byte at
a time (slowloris), is held open forever. ``HttpProtocol`` closes it once ``header_timeout``
seconds passed without complete headers, counted from the connection (first request) or from
the request's first byte (later requests on a keep-alive connection).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shim.config import ServerConfig

#: Seconds an idle keep-alive connection is kept between requests (uvicorn's default, explicit).
KEEP_ALIVE_TIMEOUT = 5


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
