"""Serving chat and completions on rendered protocols (TGI, pipelines): prompt in, neutral
results from the adapter, OpenAI response or SSE stream out.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from functools import partial

import msgspec

from shim.adapters._params import GenerationParams
from shim.adapters._result import Generation, StreamDelta
from shim.adapters._stop import StopScanner, truncate_at_stop
from shim.api import Reply
from shim.context import RequestContext
from shim.errors import InvalidRequestError, ShimError, UpstreamError
from shim.formats import Format, estimate_tokens
from shim.metrics import Metrics, TokenClock
from shim.openai.common import Usage
from shim.routing import GenerationAdapter, Route
from shim.streaming import DONE, encode_event
from shim.upstream import OpenStream, Upstream, fan_out

_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class Job:
    """One chat or completions request, ready to send."""

    route: Route
    adapter: GenerationAdapter
    params: GenerationParams
    prompts: list[str]
    fmt: Format
    stream: bool
    include_usage: bool
    # The client's stop sequences, then the model's (template end-of-turn, config): built once.
    stops: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.stops = [*self.params.stop, *self.route.stops]


async def _generate_one(
    upstream: Upstream, job: Job, prompt: str, body: bytes, ctx: RequestContext
) -> Generation:
    route, adapter = job.route, job.adapter
    parse = partial(adapter.parse_response, prompt=prompt)
    response = await upstream.post(route, adapter.path, body, ctx, parse=parse)
    generation = response.value
    text, stopped = truncate_at_stop(generation.text, job.stops)
    generation.text = text
    if generation.prompt_tokens is None:
        generation.prompt_tokens = response.count_header("x-prompt-tokens") or estimate_tokens(
            prompt
        )
    if generation.completion_tokens is None:
        generation.completion_tokens = response.count_header(
            "x-generated-tokens"
        ) or estimate_tokens(text)
        if not adapter.streams:
            # A pipeline reports no finish reason: "length" when it used the whole budget.
            limit = job.params.max_tokens or route.default_max_tokens
            if not stopped and limit and generation.completion_tokens >= limit:
                generation.finish_reason = "length"
    if stopped:
        generation.finish_reason = "stop"
    if job.params.echo:
        generation.text = prompt + generation.text
    return generation


def _payload(job: Job, prompt: str) -> bytes:
    payload = job.adapter.to_payload(
        job.params,
        prompt=prompt,
        stop=job.stops,
        default_max=job.route.default_max_tokens,
    )
    try:
        return _encoder.encode(payload)
    except RecursionError:
        # A `response_format` schema decoded, but too deep to encode again from here.
        raise InvalidRequestError(
            "The request body is nested too deeply.", param="response_format"
        ) from None


async def generate(upstream: Upstream, job: Job, ctx: RequestContext) -> list[Generation]:
    """Every choice of a non-stream request: ``n`` per prompt, run concurrently."""
    # One body per prompt, sent ``n`` times.
    calls = [(p, body) for p in job.prompts for body in [_payload(job, p)] * job.params.n]
    if len(calls) == 1:
        prompt, body = calls[0]
        return [await _generate_one(upstream, job, prompt, body, ctx)]
    return await fan_out(ctx, [_generate_one(upstream, job, p, b, ctx) for p, b in calls])


def _usage(job: Job, generations: list[Generation]) -> Usage:
    n = job.params.n
    # The prompt is counted once per prompt, however many choices it produced.
    prompt = sum((g.prompt_tokens or 0) for g in generations[::n])
    completion = sum((g.completion_tokens or 0) for g in generations)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


async def respond(upstream: Upstream, metrics: Metrics, job: Job, ctx: RequestContext) -> Reply:
    ctx.stream = job.stream
    if job.stream and job.adapter.streams:
        return await _open_stream(upstream, metrics, job, ctx)
    generations = await generate(upstream, job, ctx)
    usage = _usage(job, generations)
    ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    if job.stream:
        # The pipeline cannot stream: its one answer is sent as a stream.
        return _replay(job, generations[0], usage, metrics, ctx)
    return job.fmt.response(generations, usage, logprobs=job.params.logprobs)


async def _replay(
    job: Job, generation: Generation, usage: Usage, metrics: Metrics, ctx: RequestContext
) -> AsyncGenerator[bytes, None]:
    fmt = job.fmt
    first = fmt.first()
    if first is not None:
        yield encode_event(first)
    clock = TokenClock()
    clock.tick()
    metrics.stream_timing(ctx.model, clock, ctx.start)
    if generation.text:
        yield fmt.text_event(generation.text)
    yield encode_event(fmt.finish(generation.finish_reason))
    if job.include_usage:
        yield encode_event(fmt.usage(usage))
    yield DONE


async def _open_stream(
    upstream: Upstream, metrics: Metrics, job: Job, ctx: RequestContext
) -> AsyncGenerator[bytes, None]:
    """Open the upstream stream and read its first event *before* answering, so that upstream
    errors (including TGI's error events on a 200 stream) become real HTTP errors."""
    route, adapter = job.route, job.adapter
    assert adapter.stream_path is not None
    prompt = job.prompts[0]
    body = _payload(job, prompt)
    start = await upstream.open_stream(
        route, adapter.stream_path, body, ctx, parse=adapter.parse_event
    )
    return _relay(job, start.stream, start.first, start.rest, metrics, ctx, prompt)


async def _relay(
    job: Job,
    stream: OpenStream,
    delta: StreamDelta,
    pending: list[bytes],
    metrics: Metrics,
    ctx: RequestContext,
    prompt: str,
) -> AsyncGenerator[bytes, None]:
    """The client's stream. Events that arrived together are answered with one write."""
    fmt, adapter = job.fmt, job.adapter
    batches = stream.batches()
    logprobs = job.params.logprobs
    scanner = StopScanner(job.stops)
    clock = TokenClock()
    finish: str | None = None
    produced: list[str] = []
    out: list[bytes] = []
    first = fmt.first()
    if first is not None:
        out.append(encode_event(first))
    if job.params.echo:
        out.append(fmt.text_event(prompt))
    try:
        while True:
            text = scanner.feed(delta.text)
            if text:
                clock.tick()
                produced.append(text)
                if logprobs:
                    out.append(encode_event(fmt.text(text, delta.token, logprobs=True)))
                else:
                    out.append(fmt.text_event(text))
            if delta.finish_reason is not None or scanner.stopped:
                finish = "stop" if scanner.stopped else delta.finish_reason
                break
            if not pending:
                if out:
                    yield b"".join(out)
                    out = []
                batch = await anext(batches, None)
                if batch is None:
                    raise UpstreamError(
                        "The upstream stream ended before the generation finished.",
                        reason="stream_aborted",
                    )
                pending = batch
            delta = adapter.parse_event(pending[0])
            pending = pending[1:]
        rest = scanner.flush()
        if rest:
            produced.append(rest)
            out.append(fmt.text_event(rest))
        out.append(encode_event(fmt.finish(finish or "stop")))
        completion = "".join(produced)
        prompt_tokens = delta.prompt_tokens or estimate_tokens(prompt)
        completion_tokens = delta.completion_tokens or estimate_tokens(completion)
        ctx.prompt_tokens, ctx.completion_tokens = prompt_tokens, completion_tokens
        if job.include_usage:
            usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
            out.append(encode_event(fmt.usage(usage)))
        out.append(DONE)
        yield b"".join(out)
    except ShimError:
        # What the client should still get; the error event is written by ``shim.api``.
        if out:
            yield b"".join(out)
        raise
    finally:
        metrics.stream_timing(ctx.model, clock, ctx.start)
        await stream.aclose()
