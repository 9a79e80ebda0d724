"""OpenAI sampling parameters, reduced once to what an HF backend can act on.

Every field of ``ChatCompletionRequest`` and ``CompletionRequest`` is accounted for here:
mapped (into ``GenerationParams``), ignored on purpose (with the reason), or rejected with a
400 naming the parameter. ``tests/test_params.py`` fails if a new field is in none of the three.
These rules are for the *rendered* protocols (``tgi``, ``pipeline``); the ``openai`` protocol
forwards the request as sent (see ``adapters/openai_compat.py``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from shim.errors import InvalidRequestError
from shim.openai import chat, completions

#: Mapped into GenerationParams (or used by the handler directly).
CHAT_MAPPED = frozenset(
    {
        "messages", "model", "frequency_penalty", "presence_penalty", "max_completion_tokens",
        "max_tokens", "n", "seed", "stop", "stream", "stream_options", "temperature", "top_p",
        "logprobs", "top_logprobs", "response_format", "tools", "tool_choice", "top_k",
        "repetition_penalty", "parallel_tool_calls", "functions", "function_call",
    }
)  # fmt: skip

#: Accepted and ignored, with the reason (documented in README "Parameters").
CHAT_IGNORED: dict[str, str] = {
    "user": "an end-user id for OpenAI's abuse monitoring; nothing to forward it to",
    "safety_identifier": "same as `user`",
    "prompt_cache_key": "OpenAI prompt caching; TGI caches prefixes on its own",
    "metadata": "OpenAI stored-completion metadata; shim stores nothing",
    "store": "OpenAI stored completions; shim stores nothing",
    "service_tier": "OpenAI billing tier; not applicable",
    "logit_bias": "TGI and pipelines have no logit bias (TGI's type differs and 422s)",
    "verbosity": "OpenAI reasoning-model hint; not applicable",
    "reasoning_effort": "OpenAI reasoning-model hint; not applicable",
    "modalities": 'only text is served; `["text"]` is the default',
    "web_search_options": "no search tool exists upstream",
    "prediction": "predicted outputs are an OpenAI latency optimisation; safe to skip",
}

#: Rejected with 400 when set (on rendered protocols).
CHAT_REJECTED: dict[str, str] = {
    "audio": "audio output is not supported by Hugging Face text-generation backends",
}

COMPLETION_MAPPED = frozenset(
    {
        "model", "prompt", "echo", "frequency_penalty", "presence_penalty", "logprobs",
        "max_tokens", "n", "seed", "stop", "stream", "stream_options", "temperature", "top_p",
        "top_k", "repetition_penalty", "best_of",
    }
)  # fmt: skip
COMPLETION_IGNORED: dict[str, str] = {
    "user": CHAT_IGNORED["user"],
    "logit_bias": CHAT_IGNORED["logit_bias"],
    "metadata": CHAT_IGNORED["metadata"],
}
COMPLETION_REJECTED: dict[str, str] = {
    "suffix": "insertion (suffix) is not supported by TGI or pipelines",
}

# OpenAI's legacy completions default.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16


class GenerationParams(msgspec.Struct, kw_only=True):
    """The sampling request, normalised; adapters turn it into their wire parameters."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    stop: list[str] = msgspec.field(default_factory=list)
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    # TGI grammar ({"type": "json", "value": schema}) from response_format.
    grammar: dict[str, Any] | None = None
    echo: bool = False


def _stop_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def _reject_set(req: msgspec.Struct, rejected: dict[str, str]) -> None:
    for name, reason in rejected.items():
        if getattr(req, name) is not None:
            raise InvalidRequestError(f"`{name}` is not supported: {reason}.", param=name)


def _grammar(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json", "value": {"type": "object"}}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return {"type": "json", "value": schema or {"type": "object"}}
    raise InvalidRequestError(
        f"`response_format.type` `{kind}` is not supported (use text, json_object or json_schema).",
        param="response_format",
    )


def _repetition(presence: float | None, explicit: float | None) -> float | None:
    # TGI's own chat route maps presence_penalty p to repetition_penalty p + 2 (range 0..4).
    # We map only positive presence penalties onto a mild multiplicative penalty: 1 + p/2.
    if explicit is not None:
        return explicit
    if presence is not None and presence > 0:
        return 1.0 + presence / 2
    return None


def _shared(
    req: chat.ChatCompletionRequest | completions.CompletionRequest, *, max_tokens: int | None
) -> GenerationParams:
    """The parameters chat and completions spell alike."""
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        seed=req.seed,
        frequency_penalty=req.frequency_penalty or None,
        repetition_penalty=_repetition(req.presence_penalty, req.repetition_penalty),
        stop=_stop_list(req.stop),
        n=req.n or 1,
    )


def from_chat(req: chat.ChatCompletionRequest) -> GenerationParams:
    # Tools (`tools`, `tool_choice`, `parallel_tool_calls`, the legacy `functions` and
    # `function_call`) are read by `_tools.plan_request`: the template, grammar and parser.
    _reject_set(req, CHAT_REJECTED)
    if req.top_logprobs and not req.logprobs:
        raise InvalidRequestError("`top_logprobs` requires `logprobs: true`.", param="top_logprobs")
    params = _shared(req, max_tokens=req.max_completion_tokens or req.max_tokens)
    params.logprobs = bool(req.logprobs)
    params.top_logprobs = req.top_logprobs or 0
    params.grammar = _grammar(req.response_format)
    return params


def from_completion(req: completions.CompletionRequest) -> GenerationParams:
    _reject_set(req, COMPLETION_REJECTED)
    if req.best_of is not None and req.best_of > (req.n or 1):
        raise InvalidRequestError(
            "`best_of` greater than `n` is not supported (no server-side ranking).",
            param="best_of",
        )
    max_tokens = req.max_tokens
    if max_tokens == 0:
        raise InvalidRequestError("`max_tokens` must be at least 1.", param="max_tokens")
    params = _shared(req, max_tokens=max_tokens)
    params.logprobs = req.logprobs is not None and req.logprobs > 0
    params.top_logprobs = req.logprobs or 0
    params.echo = bool(req.echo)
    return params


def sampling(
    params: GenerationParams, *, sample_by_default: bool
) -> tuple[bool | None, float | None, float | None]:
    """(do_sample, temperature, top_p) as TGI and pipelines accept them.

    temperature 0 → greedy and no temperature (TGI rejects <= 0); top_p >= 1 or <= 0 → omitted
    (TGI rejects both). With no sampling parameter at all, TGI samples (as its own OpenAI route
    does, matching OpenAI's default temperature 1) and pipelines stay greedy (their default;
    PROTOCOLS.md §11).
    """
    temperature, top_p = params.temperature, params.top_p
    if temperature == 0:
        return False, None, None
    if top_p is not None and not 0 < top_p < 1:
        top_p = None
    wants = temperature is not None or top_p is not None or params.top_k is not None
    if wants or sample_by_default:
        return True, temperature, top_p
    return None, None, None
