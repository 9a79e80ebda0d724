"""Chat and completions on OpenAI-speaking upstreams (protocol ``openai``): the request goes
out as the client sent it (normalised by ``adapters.openai_compat``), the answer and every
stream chunk come back through its ``Rewriter``.

The HF router serves only chat: a legacy completions request to a serverless model is sent as a
one-message chat and the answer turned back into a completion.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import msgspec

from shim.adapters import ChunkRewriter, _functions, openai_compat
from shim.context import new_id
from shim.errors import ErrorBody
from shim.openai.sse import DONE, encode_event
from shim.serve.call import Attempt, Reply, decode_request
from shim.serve.formats import error_events

_raw_request = msgspec.json.Decoder(dict[str, Any])


async def respond(attempt: Attempt, *, kind: openai_compat.Kind) -> Reply:
    route, ctx = attempt.route, attempt.call.ctx
    # The request as the client sent it (decoded here: only these upstreams need it).
    request = decode_request(_raw_request, attempt.call.body)
    stream = bool(request.get("stream"))
    ctx.stream = stream
    as_completion = kind == "completions" and route.paths.completions is None
    legacy = kind == "chat" and _functions.is_legacy(request)
    if legacy:
        request = _functions.tools_from_legacy(request)
    rewriter = openai_compat.Rewriter(
        model=route.name,
        id=("chatcmpl-" if kind == "chat" else "cmpl-") + new_id(24),
        created=int(time.time()),
        kind=kind,
        as_completion=as_completion,
        legacy=legacy,
    )
    path = route.paths.completions if kind == "completions" else route.paths.chat
    if as_completion:
        path = route.paths.chat
        request = openai_compat.chat_from_completion(request)
    assert path is not None
    attempt.call.services.discovery.provider_id(route)  # a 400 when the provider serves none
    body = openai_compat.to_payload(request, upstream_model=route.upstream_model, stream=stream)
    if not stream:
        answer = await attempt.post(path, body, partial(_whole, rewriter))
        out, usage = answer.value
        if usage is not None:
            ctx.prompt_tokens, ctx.completion_tokens = usage
        return out
    return await attempt.stream(path, body, PassthroughStream(rewriter))


def _whole(rewrite: ChunkRewriter, body: bytes) -> tuple[bytes, tuple[int, int] | None]:
    """A whole answer: what the client gets, and the token counts it reports."""
    data = openai_compat.decode(body)
    return rewrite(data, stream=False), openai_compat.usage_of(data)


class PassthroughStream:
    """An OpenAI-speaking upstream's chunks, each rewritten for the client. Read to the end:
    the usage chunk comes after the one that finishes the choice."""

    __slots__ = ("_rewrite", "complete", "completion_tokens", "prompt_tokens", "tokens")

    done = False

    def __init__(self, rewrite: ChunkRewriter) -> None:
        self._rewrite = rewrite
        self.complete = False
        self.tokens = self.prompt_tokens = self.completion_tokens = 0

    def first(self) -> bytes:
        return b""

    def feed(self, data: bytes) -> bytes:
        chunk = openai_compat.decode(data)
        out = encode_event(self._rewrite(chunk, stream=True))
        if openai_compat.has_content(chunk):
            self.tokens += 1
            self.completion_tokens += 1  # counted until the upstream reports its usage
        usage = openai_compat.usage_of(chunk)
        if usage is not None:
            self.prompt_tokens, self.completion_tokens = usage
        if openai_compat.finished(chunk):
            self.complete = True
        return out

    def finish(self) -> bytes:
        return DONE

    def failure(self, error: ErrorBody) -> bytes:
        return error_events(error)
