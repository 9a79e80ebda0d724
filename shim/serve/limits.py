"""Request bounds for chat and completions: what one request asks of a model, measured from
the typed request, checked against the model's limits before any upstream call, whatever the
model's protocol (``Service.fault``). A fallback model whose limits the request exceeds is not
tried.
"""

from __future__ import annotations

import msgspec

from shim.errors import InvalidRequestError
from shim.openai import chat, completions
from shim.route import Route


class Demand(msgspec.Struct, frozen=True):
    """What one request asks of the model serving it (a Struct: built per request, and its
    init is 3x cheaper than a NamedTuple's)."""

    messages: int
    n: int
    # Completions: the prompts of a `prompt` list (a list of token ids is one prompt).
    prompts: int
    # Generations the upstream runs: prompts x max(n, best_of). On rendered protocols each is
    # one upstream call.
    choices: int
    choices_param: str
    max_tokens: int | None
    max_tokens_param: str


def of_chat(req: chat.ChatCompletionRequest) -> Demand:
    n = req.n or 1
    max_tokens: int | None
    if req.max_completion_tokens is not None:
        max_tokens, max_tokens_param = req.max_completion_tokens, "max_completion_tokens"
    else:
        max_tokens, max_tokens_param = req.max_tokens, "max_tokens"
    return Demand(len(req.messages), n, 1, n, "n", max_tokens, max_tokens_param)


def prompt_count(prompt: completions.Prompt) -> int:
    """Prompts in OpenAI's `prompt`: a string, strings, token ids, or lists of token ids."""
    if isinstance(prompt, str):
        return 1
    # Token ids are one prompt only if all are ids (a list may mix types: the wire type cannot
    # say otherwise). map() over a builtin runs in C: ~30 ns an id, under half its decoding.
    if prompt and isinstance(prompt[0], int) and all(map(int.__instancecheck__, prompt)):
        return 1
    return len(prompt)


def of_completion(req: completions.CompletionRequest) -> Demand:
    n = req.n or 1
    best_of = req.best_of or 1
    prompts = prompt_count(req.prompt)
    per_prompt, param = (best_of, "best_of") if best_of > n else (n, "n")
    if per_prompt == 1:
        param = "prompt"
    return Demand(0, n, prompts, prompts * per_prompt, param, req.max_tokens, "max_tokens")


_HOW = {"n": "prompts x `n`", "best_of": "prompts x `best_of`", "prompt": "one per prompt"}


def _fault(route: Route, demand: Demand) -> InvalidRequestError | None:
    """The first limit of ``route`` that ``demand`` exceeds, as the client's 400."""
    if demand.messages > route.max_messages:
        return InvalidRequestError(
            f"Too many messages ({demand.messages}); this model allows {route.max_messages}.",
            param="messages",
        )
    if demand.n > route.max_n:
        return InvalidRequestError(f"`n` may be at most {route.max_n} here.", param="n")
    if demand.prompts > route.max_prompts:
        return InvalidRequestError(
            f"Too many prompts ({demand.prompts}); this model allows {route.max_prompts} "
            "per request.",
            param="prompt",
        )
    if demand.choices > route.max_choices:
        return InvalidRequestError(
            f"This request asks for {demand.choices} generations ({_HOW[demand.choices_param]}); "
            f"this model allows {route.max_choices} per request.",
            param=demand.choices_param,
        )
    limit = route.max_tokens_limit
    if limit is not None and demand.max_tokens is not None and demand.max_tokens > limit:
        return InvalidRequestError(
            f"`{demand.max_tokens_param}` may be at most {limit} for this model.",
            param=demand.max_tokens_param,
        )
    return None


def fault(route: Route, demand: Demand) -> InvalidRequestError | None:
    """The 400 naming the parameter when ``demand`` exceeds a limit of ``route``; else None."""
    return _fault(route, demand)
