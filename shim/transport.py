"""The upstream transport: httpx's API over aiohttp, the fastest client measured here.

httpx-aiohttp's transport, with the per-request work it can skip moved out: aiohttp's
``ClientTimeout`` is built once per timeout setting (6.5% of a request's CPU otherwise) and
upstream URLs are parsed once. Exceptions and response streams are httpx-aiohttp's own, so
callers see httpx's API and exceptions as with any httpx transport.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from httpx_aiohttp.transport import (
    AiohttpResponseStream,
    AiohttpTransport,
    map_aiohttp_exceptions,
)
from yarl import URL

_HTTP11 = {"http_version": b"HTTP/1.1"}


class FastAiohttpTransport(AiohttpTransport):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        settings = request.extensions.get("timeout") or {}
        key = (settings.get("connect"), settings.get("read"), settings.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return timeout

    def _url(self, request: httpx.Request) -> URL:
        text = str(request.url)
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) > 4096:  # bounded: upstream URLs come from the config
                self._urls.clear()
            url = self._urls[text] = URL(text, encoded=True)
        return url

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        with map_aiohttp_exceptions():
            data: bytes | httpx.AsyncByteStream | None
            try:
                data = request.content or None
            except httpx.RequestNotRead:
                data = request.stream  # type: ignore[assignment]
                request.headers.pop("transfer-encoding", None)
            response = await self.client.request(
                method=request.method,
                url=self._url(request),
                headers=request.headers,
                data=data,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=self._timeout(request),
                server_hostname=request.extensions.get("sni_hostname"),
            ).__aenter__()
        extensions: dict[str, Any] = dict(_HTTP11)
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions=extensions,
        )
