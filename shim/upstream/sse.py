"""Reading server-sent events from an upstream: a tolerant parser (the framing of the client's
stream is ``shim.openai.sse``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

_DONE_PAYLOAD = b"[DONE]"


async def iter_sse_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """The ``data`` of the SSE events in a byte stream, a list per chunk read (empty lists are
    skipped), until ``[DONE]`` or the end.

    Batching lets a relay answer every event that arrived together with one write. Accepts
    ``data:`` with or without the space (TGI <= 2.0 sent none), CRLF or LF line ends, comment
    lines (``:`` keep-alives) and other fields, and lines split across chunks. Several ``data``
    lines of one event are joined with newlines, per the SSE spec.
    """
    buffer = b""
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        batch: list[bytes] = []
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data:
                    payload = b"\n".join(data)
                    data = []
                    if payload == _DONE_PAYLOAD:
                        if batch:
                            yield batch
                        return
                    batch.append(payload)
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # Anything else (comments, event:, id:, retry:) carries nothing for us.
        if batch:
            yield batch
    line = buffer[:-1] if buffer.endswith(b"\r") else buffer
    if line.startswith(b"data:"):
        value = line[5:]
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        payload = b"\n".join(data)
        if payload != _DONE_PAYLOAD:
            yield [payload]


async def iter_sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each event, one at a time (see ``iter_sse_batches``)."""
    async for batch in iter_sse_batches(chunks):
        for payload in batch:
            yield payload
