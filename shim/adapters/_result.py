"""Neutral results: what every adapter returns, whatever the wire format.

The OpenAI response (id, created, choices, usage) is built once from these in ``shim.generation``,
and metrics read token counts from them.
"""

from __future__ import annotations

import msgspec


class TokenInfo(msgspec.Struct, frozen=True):
    """One generated token with its log-probability and the top alternatives (TGI details)."""

    text: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


class Generation(msgspec.Struct):
    text: str
    # OpenAI finish reason: "stop" | "length" | "tool_calls" ...
    finish_reason: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens: list[TokenInfo] | None = None


class StreamDelta(msgspec.Struct):
    """One upstream stream event, reduced to what the client sees."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    token: TokenInfo | None = None


class Embeddings(msgspec.Struct):
    vectors: list[list[float]]
    prompt_tokens: int | None = None
