"""``POST /v1/completions`` (legacy): on ``openai`` upstreams the request as sent
(``passthrough``, as a one-message chat where the upstream serves chat only); on rendered
protocols each prompt as given, in a ``Job`` (``generation``).
"""

from __future__ import annotations

import msgspec

from shim.adapters import TextGeneration, _params
from shim.errors import InvalidRequestError
from shim.openai import completions
from shim.serve import generation, limits
from shim.serve.call import Attempt
from shim.serve.formats import CompletionFormat
from shim.serve.job import Job

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


class Completions(generation.GenerationService[completions.CompletionRequest]):
    path = "/v1/completions"
    decoder = _request
    kind = "completions"

    def demand(self, request: completions.CompletionRequest) -> limits.Demand:
        return limits.of_completion(request)

    def job(
        self, attempt: Attempt, adapter: TextGeneration, request: completions.CompletionRequest
    ) -> Job:
        route = attempt.route
        params = _params.from_completion(request)
        if params.max_tokens is None and route.default_max_tokens is None:
            params.max_tokens = _params.COMPLETIONS_DEFAULT_MAX_TOKENS
        prompts = _prompts(request)
        if request.stream and (params.n > 1 or len(prompts) > 1):
            raise InvalidRequestError(
                "Streaming is supported for one prompt and `n` = 1.",
                param="n" if params.n > 1 else "prompt",
            )
        template = attempt.call.services.discovery.template(route)
        return generation.job(
            attempt, adapter, request,
            template=template, params=params, prompts=prompts, fmt=CompletionFormat(route.name),
        )  # fmt: skip


SERVICE = Completions()
