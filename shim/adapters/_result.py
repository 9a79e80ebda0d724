"""Neutral results: what every adapter returns, whatever the wire format.

The OpenAI response (id, created, choices, usage) is built once from these in
``shim.serve.formats``, and metrics read token counts from them.
"""

from __future__ import annotations

import msgspec


def estimate_tokens(text: str) -> int:
    """Documented estimate when the upstream reports no counts: ~4 characters per token."""
    return (len(text) + 3) // 4 if text else 0


class TokenInfo(msgspec.Struct, frozen=True):
    """One generated token with its log-probability and the top alternatives (TGI details)."""

    text: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


class ToolCall(msgspec.Struct, frozen=True):
    """A function call parsed from a model's output: the name and the arguments as JSON text.

    Ids (``call_...``) are given by the serving layer, not here: adapters have no randomness.
    """

    name: str
    arguments: str


class Generation(msgspec.Struct):
    text: str
    # OpenAI finish reason: "stop" | "length" | "tool_calls" ...
    finish_reason: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens: list[TokenInfo] | None = None
    # Parsed from the text by the model's tool parser (``text`` keeps what came before).
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    # What the reasoning parser took out of the text (``<think>...</think>``).
    reasoning: str = ""


# --- what a stream parser emits, in order, as text arrives ------------------------------------


class TextPiece(msgspec.Struct, frozen=True):
    """Answer text, safe to send (no tool-call or reasoning markup in it)."""

    text: str


class ReasoningPiece(msgspec.Struct, frozen=True):
    """Reasoning text (``reasoning_content`` / ``response.reasoning_text.delta``)."""

    text: str


class ToolCallStart(msgspec.Struct, frozen=True):
    """A new tool call: ``index`` counts calls from 0 within one answer."""

    index: int
    name: str


class ToolCallArguments(msgspec.Struct, frozen=True):
    """The next piece of the arguments (JSON text) of call ``index``."""

    index: int
    text: str


Piece = TextPiece | ReasoningPiece | ToolCallStart | ToolCallArguments


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


class Scores(msgspec.Struct):
    """Rerank: one relevance score per document, in the order the documents were sent."""

    scores: list[float]
    prompt_tokens: int | None = None
