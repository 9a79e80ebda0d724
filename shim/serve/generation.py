"""Chat and completions on rendered protocols (TGI, pipelines): a ``Job`` (``shim.serve.job``)
sent through the route's adapter; whole answers become one OpenAI response, TGI's stream goes
through the relay with ``RenderedStream``, and a pipeline's one answer, when a stream was asked
for, with ``Replay`` (both in ``shim.serve.rendered_streams``).
"""

from __future__ import annotations

from functools import partial
from typing import Generic, TypeVar

import msgspec

from shim.adapters import TextGeneration, openai_compat
from shim.adapters._params import GenerationParams
from shim.adapters._result import Generation, estimate_tokens
from shim.adapters._stop import truncate_at_stop
from shim.config import GENERATION_TASKS
from shim.errors import InvalidRequestError
from shim.openai import chat, completions
from shim.openai.common import Usage
from shim.route import Route
from shim.serve import counting, limits, passthrough
from shim.serve.answers import Reading
from shim.serve.call import Attempt, Reply
from shim.serve.formats import Format
from shim.serve.job import Job
from shim.serve.rendered_streams import RenderedStream, Replay
from shim.templates import ChatTemplate

G = TypeVar("G", chat.ChatCompletionRequest, completions.CompletionRequest)
_encoder = msgspec.json.Encoder()


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
