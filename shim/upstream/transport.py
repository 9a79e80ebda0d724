"""The upstream transport: httpx's API over aiohttp, the fastest client measured here.

shim's own ``httpx.AsyncBaseTransport``: one ``aiohttp.ClientSession`` per process, aiohttp's
``ClientTimeout`` and ``yarl.URL`` built once per setting and URL (not per request), aiohttp's
body reader handed to httpx as it is, and one table from aiohttp's exceptions to httpx's, so
callers see httpx's API and exceptions as with any httpx transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
from yarl import URL

_HTTP11 = b"HTTP/1.1"
# Bounded: upstream URLs come from the config, this only guards against a caller that builds
# them from request data.
_MAX_URLS = 4096


class ClosedBeforeResponseError(httpx.RemoteProtocolError):
    """The connection broke after it was established and before any byte of the response:
    most often a pooled keep-alive connection the server had just closed. aiohttp retries
    exactly these itself for idempotent methods on a reused connection (RFC 9112, 9.3.1); for
    shim's POSTs a retry is as safe as retrying a 5xx."""


_Mapped = type[httpx.TransportError]

# aiohttp's exceptions (``aiohttp/client_exceptions.py``) → httpx's, most specific first, in
# the shape of httpx's own map for httpcore (``httpx/_transports/default.py``). Columns: the
# aiohttp class, what it becomes before the response headers arrived, and while the body is
# read. Every class aiohttp exports is listed, so a new one fails the completeness test.
EXCEPTIONS: tuple[tuple[type[BaseException], _Mapped, _Mapped], ...] = (
    # Timeouts. aiohttp's `connect` timeout spans the wait for a pool slot and the connect
    # itself, and both raise ConnectionTimeoutError: a pool timeout reads as a connect timeout.
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout, httpx.ReadTimeout),
    # Connecting: refused, DNS, TLS (certificate, handshake, pinned fingerprint), proxy.
    (aiohttp.ClientConnectorCertificateError, httpx.ConnectError, httpx.ConnectError),
    (aiohttp.ClientConnectorSSLError, httpx.ConnectError, httpx.ConnectError),
    (aiohttp.ClientSSLError, httpx.ConnectError, httpx.ConnectError),
    (aiohttp.ClientConnectorDNSError, httpx.ConnectError, httpx.ConnectError),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError, httpx.ProxyError),
    (aiohttp.client_exceptions.UnixClientConnectorError, httpx.ConnectError, httpx.ConnectError),
    (aiohttp.ClientConnectorError, httpx.ConnectError, httpx.ConnectError),
    (aiohttp.ServerFingerprintMismatch, httpx.ConnectError, httpx.ConnectError),
    # An established connection that broke: closed or reset by the server.
    (aiohttp.ServerDisconnectedError, ClosedBeforeResponseError, httpx.RemoteProtocolError),
    (aiohttp.ServerConnectionError, httpx.RemoteProtocolError, httpx.RemoteProtocolError),
    (aiohttp.ClientConnectionResetError, ClosedBeforeResponseError, httpx.ReadError),
    (aiohttp.ClientOSError, ClosedBeforeResponseError, httpx.ReadError),
    (aiohttp.ClientConnectionError, httpx.ReadError, httpx.ReadError),
    # A body the request could not finish sending, or a response that breaks HTTP/1.1
    # (a garbage status line, a truncated chunked or Content-Length body).
    (aiohttp.UploadAbortedError, httpx.WriteError, httpx.WriteError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError, httpx.RemoteProtocolError),
    (aiohttp.ClientHttpProxyError, httpx.ProxyError, httpx.ProxyError),
    # (Redirects are never followed and the body is never read as JSON or a websocket.)
    (aiohttp.TooManyRedirects, httpx.RemoteProtocolError, httpx.RemoteProtocolError),
    (aiohttp.ContentTypeError, httpx.RemoteProtocolError, httpx.RemoteProtocolError),
    (aiohttp.WSServerHandshakeError, httpx.RemoteProtocolError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError, httpx.RemoteProtocolError),
    # URLs aiohttp cannot request (a missing host, a scheme other than http/https).
    (aiohttp.InvalidUrlRedirectClientError, httpx.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlRedirectClientError, httpx.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (aiohttp.RedirectClientError, httpx.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (aiohttp.InvalidUrlClientError, httpx.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.TransportError, httpx.TransportError),
    # A bare timeout is aiohttp's total-request timer (shim sets none): waiting for data.
    (TimeoutError, httpx.ReadTimeout, httpx.ReadTimeout),
)

# Classes whose text never holds the request URL (others put it, query and all, in theirs).
_URL_FREE = (
    aiohttp.ClientConnectorError,  # "Cannot connect to host h:port ssl:... [reason]"
    aiohttp.ClientOSError,
    aiohttp.ClientConnectionResetError,
    aiohttp.ClientPayloadError,
    aiohttp.SocketTimeoutError,
    aiohttp.UploadAbortedError,
)

# Texts for classes whose own text holds the URL.
_TEXTS = (
    (aiohttp.ConnectionTimeoutError, "Connection timeout"),
    (aiohttp.TooManyRedirects, "Too many redirects"),
    (aiohttp.InvalidURL, "Invalid URL"),
    (aiohttp.NonHttpUrlClientError, "Not an http or https URL"),
)


def map_exception(
    exc: BaseException, *, answered: bool, request: httpx.Request | None = None
) -> httpx.TransportError:
    """The httpx exception for an aiohttp failure (``answered``: the response headers had
    arrived). Its message never holds the URL's userinfo or query."""
    for source, before, after in EXCEPTIONS:
        if isinstance(exc, source):
            mapped = after if answered else before
            break
    else:
        mapped = httpx.TransportError
    return mapped(_describe(exc), request=request)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        # (Its message may be the half-parsed response rather than a text.)
        return exc.message if isinstance(exc.message, str) else "Server disconnected"
    if isinstance(exc, aiohttp.ClientResponseError) and not isinstance(
        exc, aiohttp.TooManyRedirects
    ):
        return exc.message or f"{type(exc).__name__} (HTTP {exc.status})"
    if isinstance(exc, _URL_FREE) and str(exc):
        return str(exc)
    for source, text in _TEXTS:
        if isinstance(exc, source):
            return text
    return type(exc).__name__


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent with one aiohttp session, created in the running loop on first
    use and closed by ``aclose``.

    Bodies are sent as bytes and read without aiohttp's decompression: httpx decodes a
    ``content-encoding`` itself (``shim.upstream._compressed``). Redirects are not followed.
    """

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        # aiohttp's ClientTimeout per (connect, read, pool) setting: building one per request
        # was 6.5% of a request's CPU (bench/profile.md, item 3). Cached here rather than built
        # per route at config load: requests keep httpx's standard `timeout` extension (so the
        # AsyncClient's GETs work unchanged) and routes stay free of aiohttp's types, for a
        # tuple and a dict lookup per request. A route has two settings: the cache stays tiny.
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}
        self._urls: dict[Any, URL] = {}

    def _open(self) -> aiohttp.ClientSession:
        limits = self._limits
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=limits.keepalive_expiry or 60,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # No cookie jar: one upstream's cookies must never reach another client's request.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )
        return self._session

    def _timeout(self, extensions: dict[str, Any]) -> aiohttp.ClientTimeout:
        settings = extensions.get("timeout") or {}
        # (aiohttp has no write timeout; `connect` is its pool wait plus the connect.)
        key = (settings.get("connect"), settings.get("read"), settings.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return timeout

    def _url(self, url: httpx.URL) -> URL:
        # httpx.URL keeps its parse in an immutable NamedTuple that copies share: a key hashed
        # by value at a fraction of str(url)'s cost (~3 µs, about 3% of a request).
        key = url._uri_reference
        parsed = self._urls.get(key)
        if parsed is None:
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            parsed = self._urls[key] = URL(str(url), encoded=True)
        return parsed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        headers = request.headers
        encoding = headers.encoding  # (computed once per Headers; multi_items asks per value)
        try:
            response = await session.request(
                request.method,
                self._url(request.url),
                headers=[
                    (key.decode(encoding), value.decode(encoding)) for key, value in headers.raw
                ],
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request.extensions),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise map_exception(exc, answered=False, request=request) from exc
        extensions: dict[str, Any] = {"http_version": _HTTP11}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=ResponseStream(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class ResponseStream(httpx.AsyncByteStream):
    """aiohttp's body reader as httpx's stream: each read is whatever arrived (one network
    read, however many SSE events it holds)."""

    __slots__ = ("_content", "_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._content = response.content
        self._request = request

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._content.readany()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise map_exception(exc, answered=True, request=self._request) from exc
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """A body read to its end gives the connection back to the pool; an unfinished one
        closes the socket, so an upstream still generating (and billing) sees it stop."""
        if self._content.at_eof():
            self._response.release()
        else:
            self._response.close()
