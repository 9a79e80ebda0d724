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
from shim.generation import stream_failure
from shim.metrics import Metrics, TokenClock
from shim.routing import Route
from shim.streaming import DONE, encode_event
from shim.upstream import OpenStream, Upstream

Kind = Literal["chat", "completions"]


class _Rewriter:
    __slots__ = ("as_completion", "created", "id", "model", "objects")

    def __init__(self, route: Route, kind: Kind) -> None:
        prefix = "chatcmpl-" if kind == "chat" else "cmpl-"
        self.id = prefix + new_id(24)
        self.created = int(time.time())
        self.model = route.name
        self.as_completion = kind == "completions" and route.paths.completions is None
        # (answer, chunk) `object`. Always set: the openai SDK's stream helpers drop chunks
        # whose `object` is not "chat.completion.chunk" (TGI < 2.1 sends "text_completion";
        # some upstreams leave it out of the usage chunk).
        self.objects = (
            ("chat.completion", "chat.completion.chunk")
            if kind == "chat"
            else ("text_completion", "text_completion")
        )

    def __call__(self, data: dict[str, Any], *, stream: bool) -> bytes:
        if "error" not in data:
            if self.as_completion:
                openai_compat.chat_as_completion(data, stream=stream)
            data["object"] = self.objects[stream]
        return openai_compat.rewrite(
            data, model=self.model, id=self.id, created=self.created, stream=stream
        )


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
        response = await upstream.post(route, path, body, ctx)
        data = openai_compat.decode(response.content)
        out = rewriter(data, stream=False)
        usage = openai_compat.usage_of(data)
        if usage is not None:
            ctx.prompt_tokens, ctx.completion_tokens = usage
        return out
    opened = await upstream.open_stream(route, path, body, ctx)
    first = await opened.first_batch()
    try:
        first_data = openai_compat.decode(first[0])
        first_chunk = rewriter(first_data, stream=True)
    except BaseException:
        await opened.aclose()
        raise
    return _relay(opened, first_data, first_chunk, first[1:], rewriter, metrics, ctx)


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
            data = openai_compat.decode(pending[0])
            pending = pending[1:]
            chunk = rewriter(data, stream=True)
        if not finished:
            raise UpstreamError(
                "The upstream stream ended before the generation finished.",
                reason="stream_aborted",
            )
        yield DONE
    except ShimError as exc:
        yield b"".join([*out, stream_failure(exc, metrics, ctx), DONE])
    finally:
        metrics.stream_timing(ctx.model, clock, ctx.start)
        await opened.aclose()
