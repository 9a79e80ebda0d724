"""Serving chat and completions on OpenAI-speaking upstreams (protocol ``openai``).

The HF router serves only chat: a legacy completions request to a serverless model is sent as a
one-message chat and the answer turned back into a completion.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any, Literal

from shim.adapters import openai_compat
from shim.api import Reply
from shim.context import RequestContext, new_id
from shim.errors import ShimError, UpstreamError
from shim.metrics import Metrics, TokenClock
from shim.routing import Route
from shim.streaming import DONE, encode_event
from shim.upstream import OpenStream, Upstream

Kind = Literal["chat", "completions"]


class _Rewriter:
    """Turns the upstream's answer and chunks into ours (pure: parses run inside the upstream
    attempt, so an invalid answer is a failed attempt)."""

    __slots__ = ("as_completion", "chat", "created", "id", "model", "objects")

    def __init__(self, route: Route, kind: Kind) -> None:
        prefix = "chatcmpl-" if kind == "chat" else "cmpl-"
        self.id = prefix + new_id(24)
        self.created = int(time.time())
        self.model = route.name
        self.as_completion = kind == "completions" and route.paths.completions is None
        # Whether the upstream is asked (and answers) a chat request.
        self.chat = kind == "chat" or self.as_completion
        # (answer, chunk) `object`. Always set: the openai SDK's stream helpers drop chunks
        # whose `object` is not "chat.completion.chunk" (TGI < 2.1 sends "text_completion";
        # some upstreams leave it out of the usage chunk).
        self.objects = (
            ("chat.completion", "chat.completion.chunk")
            if kind == "chat"
            else ("text_completion", "text_completion")
        )

    def __call__(self, data: dict[str, Any], *, stream: bool) -> bytes:
        return openai_compat.rewrite(
            data,
            model=self.model,
            id=self.id,
            created=self.created,
            stream=stream,
            chat=self.chat,
            as_completion=self.as_completion,
            object=self.objects[stream],
        )

    def answer(self, body: bytes) -> tuple[bytes, tuple[int, int] | None]:
        """A whole answer: what the client gets, and the token counts it reports."""
        data = openai_compat.decode(body)
        return self(data, stream=False), openai_compat.usage_of(data)

    def chunk(self, event: bytes) -> tuple[dict[str, Any], bytes]:
        """A stream event: as decoded (for token counting), and as the client gets it."""
        data = openai_compat.decode(event)
        return data, self(data, stream=True)


async def respond(
    upstream: Upstream,
    metrics: Metrics,
    route: Route,
    request: dict[str, Any],
    ctx: RequestContext,
    *,
    kind: Kind,
) -> Reply:
    stream = bool(request.get("stream"))
    ctx.stream = stream
    rewriter = _Rewriter(route, kind)
    if kind == "completions" and not rewriter.as_completion:
        path = route.paths.completions
    else:
        path = route.paths.chat
        if kind == "completions":
            request = openai_compat.chat_from_completion(request)
    assert path is not None
    body = openai_compat.to_payload(request, upstream_model=route.hf_model or "tgi", stream=stream)
    if not stream:
        answer = await upstream.post(route, path, body, ctx, parse=rewriter.answer)
        out, usage = answer.value
        if usage is not None:
            ctx.prompt_tokens, ctx.completion_tokens = usage
        return out
    start = await upstream.open_stream(route, path, body, ctx, parse=rewriter.chunk)
    data, chunk = start.first
    return _relay(start.stream, data, chunk, start.rest, rewriter, metrics, ctx)


def _has_content(data: dict[str, Any]) -> bool:
    for choice in data.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or choice.get("text"):
            return True
    return False


def _finished(data: dict[str, Any]) -> bool:
    return any(choice.get("finish_reason") for choice in data.get("choices") or ())


async def _relay(
    opened: OpenStream,
    data: dict[str, Any],
    chunk: bytes,
    pending: list[bytes],
    rewriter: _Rewriter,
    metrics: Metrics,
    ctx: RequestContext,
) -> AsyncGenerator[bytes, None]:
    """The client's stream. Events that arrived together are answered with one write."""
    batches = opened.batches()
    clock = TokenClock()
    finished = False
    out: list[bytes] = []
    try:
        while True:
            if _has_content(data):
                clock.tick()
                ctx.completion_tokens += 1
            usage = openai_compat.usage_of(data)
            if usage is not None:
                ctx.prompt_tokens, ctx.completion_tokens = usage
            finished = finished or _finished(data)
            out.append(encode_event(chunk))
            if not pending:
                yield b"".join(out)
                out = []
                batch = await anext(batches, None)
                if batch is None:
                    break
                pending = batch
            data, chunk = rewriter.chunk(pending[0])
            pending = pending[1:]
        if not finished:
            raise UpstreamError(
                "The upstream stream ended before the generation finished.",
                reason="stream_aborted",
            )
        yield DONE
    except ShimError:
        # What the client should still get; the error event is written by ``shim.api``.
        if out:
            yield b"".join(out)
        raise
    finally:
        metrics.stream_timing(ctx.model, clock, ctx.start)
        await opened.aclose()
