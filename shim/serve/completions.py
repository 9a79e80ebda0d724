"""``POST /v1/completions`` (legacy): on ``openai`` upstreams the request as sent
(``passthrough``, as a one-message chat where the upstream serves chat only); on rendered
protocols each prompt as given, in a ``Job`` (``generation``).
"""

from __future__ import annotations

import msgspec

from shim.adapters import _params
from shim.errors import InvalidRequestError
from shim.openai import completions
from shim.routing import Route
from shim.serve import generation, limits, passthrough
from shim.serve.call import Attempt, Reply, decode_request
from shim.serve.formats import CompletionFormat

_request = msgspec.json.Decoder(completions.CompletionRequest)


def _prompts(req: completions.CompletionRequest) -> list[str]:
    prompt = req.prompt
    if isinstance(prompt, str):
        return [prompt]
    prompts = [p for p in prompt if isinstance(p, str)]
    if len(prompts) != len(prompt):
        raise InvalidRequestError(
            'Token-id prompts need an upstream that accepts ids: set protocol = "openai".',
            param="prompt",
        )
    if not prompts:
        raise InvalidRequestError("`prompt` must not be empty.", param="prompt")
    return prompts


class Completions:
    path = "/v1/completions"
    tasks = generation.GENERATION_TASKS

    def decode(self, body: bytes) -> completions.CompletionRequest:
        return decode_request(_request, body)

    def model(self, request: completions.CompletionRequest) -> str:
        return request.model

    def fault(
        self, route: Route, request: completions.CompletionRequest
    ) -> InvalidRequestError | None:
        return limits.fault(route, limits.of_completion(request))

    async def answer(self, attempt: Attempt, request: completions.CompletionRequest) -> Reply:
        route = attempt.route
        if route.generator is None:
            return await passthrough.respond(attempt, kind="completions")
        params = _params.from_completion(request)
        if params.max_tokens is None and route.default_max_tokens is None:
            params.max_tokens = _params.COMPLETIONS_DEFAULT_MAX_TOKENS
        prompts = _prompts(request)
        if request.stream and (params.n > 1 or len(prompts) > 1):
            raise InvalidRequestError(
                "Streaming is supported for one prompt and `n` = 1.",
                param="n" if params.n > 1 else "prompt",
            )
        job = generation.Job(
            route=route,
            adapter=route.generator,
            template=attempt.call.services.discovery.template(route),
            params=params,
            prompts=prompts,
            fmt=CompletionFormat(route.name),
            stream=bool(request.stream),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
        )
        return await generation.respond(attempt, job)


SERVICE = Completions()
