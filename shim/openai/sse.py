"""How OpenAI's APIs frame a stream (server-sent events): chat and completions send ``data:``
events and end with ``[DONE]``; the Responses API names each event (``event:``) and sends no
``[DONE]``. (Reading an upstream's stream is ``shim.upstream.sse``.)"""

from __future__ import annotations

DONE = b"data: [DONE]\n\n"
#: Response headers of every client stream (no proxy buffering, no caching).
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def encode_event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def encode_named_event(name: bytes, payload: bytes) -> bytes:
    """An event with an ``event:`` field, as the Responses API streams (and no ``[DONE]``)."""
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"
