"""Chat and completions on rendered protocols (TGI, pipelines): a ``Job`` (prompts, neutral
parameters, stops) sent through the route's adapter; whole answers become one OpenAI response,
TGI's stream goes through the relay with ``RenderedStream``, and a pipeline's one answer,
when a stream was asked for, with ``Replay``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

import msgspec

from shim.adapters import TextGeneration, openai_compat
from shim.adapters._params import GenerationParams
from shim.adapters._result import (
    Generation,
    Piece,
    StreamDelta,
    TextPiece,
    TokenInfo,
    ToolCallStart,
    estimate_tokens,
)
from shim.adapters._stop import StopScanner, truncate_at_stop
from shim.config import Task
from shim.discovery import TokenCounter
from shim.errors import ErrorBody, InvalidRequestError
from shim.openai import chat, completions
from shim.openai.common import Usage
from shim.openai.sse import DONE, encode_event
from shim.routing import Route
from shim.serve import counting, limits, passthrough
from shim.serve.answers import Reading
from shim.serve.call import Attempt, Reply
from shim.serve.formats import ChatFormat, Format, error_events, pieces_of
from shim.templates import ChatTemplate

GENERATION_TASKS: tuple[Task, ...] = ("text-generation", "text2text-generation")
G = TypeVar("G", chat.ChatCompletionRequest, completions.CompletionRequest)
_encoder = msgspec.json.Encoder()


@dataclass(slots=True, kw_only=True)
class Job:
    """One chat or completions request on one route, ready to send."""

    route: Route
    adapter: TextGeneration
    template: ChatTemplate | None
    params: GenerationParams
    prompts: list[str]
    fmt: Format
    stream: bool
    include_usage: bool
    # The model's tokenizer, once learned: counts what the upstream does not (else estimated).
    tokenizer: TokenCounter | None
    # How tool calls and reasoning are read from the answer (None: plain text; chat only).
    reading: Reading | None = None
    # The client's stop sequences, then the model's (template end-of-turn, config): built once.
    stops: list[str] = field(init=False)

    def __post_init__(self) -> None:
        template_stops = self.template.stop if self.template is not None else ()
        self.stops = [*self.params.stop, *template_stops, *self.route.config.stop]


class GenerationService(Generic[G]):
    """What chat and completions share: their tasks; OpenAI-speaking upstreams get the request
    as sent (``passthrough``), rendered protocols the ``Job`` the subclass builds."""

    tasks = GENERATION_TASKS
    kind: openai_compat.Kind

    def demand(self, request: G) -> limits.Demand:
        raise NotImplementedError

    def job(self, attempt: Attempt, adapter: TextGeneration, request: G) -> Job:
        raise NotImplementedError

    def fault(self, route: Route, request: G) -> InvalidRequestError | None:
        return limits.fault(route, self.demand(request))

    async def answer(self, attempt: Attempt, request: G) -> Reply:
        adapter = attempt.route.generator
        if adapter is None:
            return await passthrough.respond(attempt, kind=self.kind)
        return await respond(attempt, self.job(attempt, adapter, request))


def job(
    attempt: Attempt,
    adapter: TextGeneration,
    request: G,
    *,
    template: ChatTemplate | None,
    params: GenerationParams,
    prompts: list[str],
    fmt: Format,
    reading: Reading | None = None,
) -> Job:
    options = request.stream_options
    return Job(
        route=attempt.route,
        adapter=adapter,
        template=template,
        params=params,
        prompts=prompts,
        fmt=fmt,
        stream=bool(request.stream),
        include_usage=bool(options and options.include_usage),
        tokenizer=attempt.call.services.discovery.tokenizer(attempt.route),
        reading=reading,
    )


async def respond(attempt: Attempt, job: Job) -> Reply:
    ctx = attempt.call.ctx
    ctx.stream = job.stream
    stream_path = job.adapter.stream_path
    if job.stream and stream_path is not None:
        return await attempt.stream(stream_path, payload(job, job.prompts[0]), RenderedStream(job))
    generations = await generate(attempt, job)
    usage = _usage(job, generations)
    ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    if job.stream:
        # The pipeline cannot stream: its one answer is sent as a stream.
        return attempt.replay(Replay(job, generations[0], usage))
    return job.fmt.response(generations, usage, logprobs=job.params.logprobs)


def payload(job: Job, prompt: str) -> bytes:
    """The upstream request body for ``prompt``."""
    upstream = job.adapter.to_payload(
        job.params, prompt=prompt, stop=job.stops, default_max=job.route.default_max_tokens
    )
    try:
        return _encoder.encode(upstream)
    except RecursionError:
        # A `response_format` schema decoded, but too deep to encode again from here.
        raise InvalidRequestError(
            "The request body is nested too deeply.", param="response_format"
        ) from None


async def generate(attempt: Attempt, job: Job) -> list[Generation]:
    """Every choice of a non-stream request: ``n`` per prompt, run concurrently."""
    # One body per prompt, sent ``n`` times.
    calls = [(p, body) for p in job.prompts for body in [payload(job, p)] * job.params.n]
    if len(calls) == 1:
        prompt, body = calls[0]
        return [await _generate_one(attempt, job, prompt, body)]
    return await attempt.fan_out([_generate_one(attempt, job, p, b) for p, b in calls])


async def _generate_one(attempt: Attempt, job: Job, prompt: str, body: bytes) -> Generation:
    route, adapter, reading = job.route, job.adapter, job.reading
    markers = reading.markers if reading is not None else frozenset()
    parse = partial(
        adapter.parse_response, prompt=prompt, markers=markers, logprobs=job.params.logprobs
    )
    answer = await attempt.post(adapter.path, body, parse)
    generation = answer.value
    text, stopped = truncate_at_stop(generation.text, job.stops)
    generation.text = text
    if generation.prompt_tokens is None:
        counted = answer.count_header("x-prompt-tokens")
        generation.prompt_tokens = counted or await _count(job, prompt, special=True)
    if generation.completion_tokens is None:
        counted = answer.count_header("x-generated-tokens")
        generation.completion_tokens = counted or await _count(job, text, special=False)
        if not adapter.reports_finish:
            # No finish reason from the upstream: "length" when it used the whole budget
            # (exact with the model's tokenizer; an estimate without).
            limit = job.params.max_tokens or route.default_max_tokens
            if not stopped and limit and generation.completion_tokens >= limit:
                generation.finish_reason = "length"
    if stopped:
        generation.finish_reason = "stop"
    if job.params.echo:
        generation.text = prompt + generation.text
    if reading is not None:
        reading.apply(generation, prompt)
    return generation


async def _count(job: Job, text: str, *, special: bool) -> int:
    """``text``'s tokens: the model's tokenizer's count (``special``: with the tokens the model
    adds to a prompt), else the documented estimate."""
    if job.tokenizer is None:
        return estimate_tokens(text)
    [tokens] = await counting.count_tokens(job.tokenizer, [text], special=special)
    return tokens


def _usage(job: Job, generations: list[Generation]) -> Usage:
    n = job.params.n
    # The prompt is counted once per prompt, however many choices it produced.
    prompt = sum((g.prompt_tokens or 0) for g in generations[::n])
    completion = sum((g.completion_tokens or 0) for g in generations)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


class RenderedStream:
    """TGI's stream events → OpenAI chunks, stop sequences applied as the text arrives (held
    back only while it may still become a stop), usage at the end.

    The answer's text becomes neutral ``Piece``s (``_pieces``: through the answer parser when
    the job has a ``Reading``, so reasoning and tool calls, never their markup) that ``_emit``
    writes in the client's format: chat and completions chunks here, Responses API events in
    ``shim.serve.responses``."""

    __slots__ = (
        "_answer", "_called", "_finish", "_job", "_last", "_parse", "_produced", "_scanner",
        "complete", "completion_tokens", "done", "prompt_tokens", "tokens",
    )  # fmt: skip

    def __init__(self, job: Job) -> None:
        self._job = job
        reading = job.reading
        # Bound once (per event it is one call); with marker tokens to keep when parsing.
        parse = job.adapter.parse_event
        self._parse = parse if reading is None else partial(parse, markers=reading.markers)
        self._scanner = StopScanner(job.stops)
        self._produced: list[str] = []
        self._finish = "stop"
        # The event that ended the generation (its token counts, when TGI reports them).
        self._last: StreamDelta | None = None
        self._answer = reading.parser(job.prompts[0]) if reading is not None else None
        # A tool call was read: the finish reason becomes "tool_calls".
        self._called = False
        self.complete = self.done = False
        self.tokens = self.prompt_tokens = self.completion_tokens = 0

    def first(self) -> bytes:
        job = self._job
        first = job.fmt.first()
        out = encode_event(first) if first is not None else b""
        if job.params.echo:
            out += job.fmt.text_event(job.prompts[0])
        return out

    def feed(self, data: bytes) -> bytes:
        delta = self._parse(data)
        scanner = self._scanner
        text = scanner.feed(delta.text)
        out = b""
        if text:
            self.tokens += 1
            self._produced.append(text)
            out = self._emit(self._pieces(text), delta.token)
        if delta.finish_reason is not None or scanner.stopped:
            self._finish = "stop" if scanner.stopped else delta.finish_reason or "stop"
            self._last = delta
            self.complete = self.done = True
        return out

    def _pieces(self, text: str, *, last: bool = False) -> list[Piece]:
        """The answer text that arrived, as pieces (``last``: the answer ends with it)."""
        answer = self._answer
        if answer is None:
            return [TextPiece(text)] if text else []
        pieces = answer.feed(text)
        if last:
            pieces += answer.finish()
        if not self._called:
            self._called = any(isinstance(p, ToolCallStart) for p in pieces)
        return pieces

    def _emit(self, pieces: list[Piece], token: TokenInfo | None) -> bytes:
        """Pieces in the client's format (``token``: the last token's details, for logprobs)."""
        job, out = self._job, b""
        if job.reading is not None and isinstance(job.fmt, ChatFormat):
            return job.fmt.piece_events(pieces)
        for piece in pieces:
            if isinstance(piece, TextPiece):
                if job.params.logprobs:
                    out += encode_event(job.fmt.text(piece.text, token, logprobs=True))
                else:
                    out += job.fmt.text_event(piece.text)
        return out

    def _count(self) -> None:
        """The usage, from TGI's last event when it reports it, else estimated."""
        last, job = self._last, self._job
        prompt_tokens = last.prompt_tokens if last is not None else None
        completion_tokens = last.completion_tokens if last is not None else None
        self.prompt_tokens = prompt_tokens or estimate_tokens(job.prompts[0])
        self.completion_tokens = completion_tokens or estimate_tokens("".join(self._produced))

    def _rest(self) -> bytes:
        """What the stop scanner (and the answer parser) still held, emitted; the finish
        reason set for the calls read."""
        rest = self._scanner.flush()
        if rest:
            self._produced.append(rest)
        reading = self._job.reading
        if reading is None:
            return self._emit(self._pieces(rest), None) if rest else b""
        out = self._emit(self._pieces(rest, last=True), None)
        self._finish = reading.finish_reason(self._finish, called=self._called)
        return out

    def finish(self) -> bytes:
        job, fmt = self._job, self._job.fmt
        out = [self._rest(), encode_event(fmt.finish(self._finish))]
        self._count()
        if job.include_usage:
            usage = Usage(
                self.prompt_tokens, self.completion_tokens,
                self.prompt_tokens + self.completion_tokens,
            )  # fmt: skip
            out.append(encode_event(fmt.usage(usage)))
        out.append(DONE)
        return b"".join(out)

    def failure(self, error: ErrorBody) -> bytes:
        return error_events(error)


class Replay:
    """A whole answer sent as a stream (the pipeline cannot stream)."""

    __slots__ = (
        "_generation", "_job", "_usage", "complete", "completion_tokens", "done",
        "prompt_tokens", "tokens",
    )  # fmt: skip

    def __init__(self, job: Job, generation: Generation, usage: Usage) -> None:
        self._job, self._generation, self._usage = job, generation, usage
        self.complete = self.done = True
        self.tokens = 0
        self.prompt_tokens, self.completion_tokens = usage.prompt_tokens, usage.completion_tokens

    def first(self) -> bytes:
        first = self._job.fmt.first()
        return encode_event(first) if first is not None else b""

    def feed(self, data: bytes) -> bytes:  # pragma: no cover - a replay reads no upstream
        return b""

    def finish(self) -> bytes:
        fmt, generation = self._job.fmt, self._generation
        self.tokens = 1
        if isinstance(fmt, ChatFormat) and self._job.reading is not None:
            out = [fmt.piece_events(pieces_of(generation))]
        else:
            out = [fmt.text_event(generation.text)] if generation.text else []
        out.append(encode_event(fmt.finish(generation.finish_reason)))
        if self._job.include_usage:
            out.append(encode_event(fmt.usage(self._usage)))
        out.append(DONE)
        return b"".join(out)

    def failure(self, error: ErrorBody) -> bytes:  # pragma: no cover - nothing can fail
        return error_events(error)
