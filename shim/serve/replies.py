"""Whole replies written straight to ASGI ``send``: a JSON body, or an error envelope. (A
client stream is written by ``shim.serve.relay``.)"""

from __future__ import annotations

from collections.abc import Iterable

from shim.errors import ShimError
from shim.redact import Scrubber
from shim.types import Send

_JSON = (b"content-type", b"application/json")


async def send_json(
    send: Send, body: bytes, *, status: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, scrubber: Scrubber, error: ShimError) -> None:
    """OpenAI's error envelope (its message scrubbed), with the headers that go with it
    (``Retry-After``...)."""
    headers = ((name.encode(), value.encode()) for name, value in error.headers().items())
    await send_json(send, scrubber.envelope(error), status=error.status_code, headers=headers)
