"""The translators between OpenAI's API and what each upstream speaks: one contract per task,
each implemented by one class per protocol. Adapters are pure (no I/O, clock, randomness or
logging); ids, timestamps and the OpenAI responses themselves are the serving layer's.

Where is X translated?

- text-generation (``TextGeneration``): ``text_generation.TGI``, ``text_generation.Pipeline``;
  tool calls and reasoning in a rendered model's text: ``_tools`` (a request's tools →
  ``ToolPlan``, TGI's grammar) and ``_answer`` (a model's text → reasoning, content and calls,
  streamed or whole; over ``_tool_parser`` (``_tool_scan``, ``_tool_formats``), ``_tool_call``,
  ``_json_stream``, ``_reasoning``);
- feature-extraction (``FeatureExtraction``): ``feature_extraction.TEI``, ``.Pipeline``,
  ``.OpenAIStyle``;
- text-ranking (``TextRanking``): ``text_ranking.TEI``, ``.Pipeline``, ``.RerankAPI``;
- OpenAI-speaking upstreams, any task (``ChunkRewriter``): ``openai_compat.Rewriter``, the
  request side by ``openai_compat.to_payload``; the legacy ``functions`` API by ``_functions``.

Shared pieces: ``_params`` (OpenAI parameters → neutral), ``_prompt`` (chat → prompt),
``_stop`` (stop sequences), ``_vectors`` (embedding shapes), ``_result`` (neutral results).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from shim import hf
from shim.adapters._params import GenerationParams
from shim.adapters._result import Embeddings, Generation, Scores, StreamDelta


class TextGeneration(Protocol):
    """OpenAI chat/completions → an HF generation payload; HF answers → neutral results."""

    path: str
    #: None: the protocol cannot stream (its one answer is replayed as a stream).
    stream_path: str | None
    #: False: answers carry no finish reason (shim infers "length" from the token budget).
    reports_finish: bool
    #: Generation can be constrained by a JSON grammar (forced tool calls, ``response_format``).
    accepts_grammar: bool

    def to_payload(
        self, params: GenerationParams, *, prompt: str, stop: Sequence[str], default_max: int | None
    ) -> hf.GenerateRequest: ...

    # ``markers``: special tokens to keep in the text (a tool or reasoning parser reads them).
    # ``logprobs``: fill ``Generation.tokens`` (only then: per-token objects cost CPU).
    def parse_response(
        self, body: bytes, *, prompt: str, markers: frozenset[str] = ..., logprobs: bool = ...
    ) -> Generation: ...

    def parse_event(
        self, data: bytes, *, markers: frozenset[str] = ..., logprobs: bool = ...
    ) -> StreamDelta: ...


class FeatureExtraction(Protocol):
    """Inputs → an upstream embeddings payload; its answer → one vector per input."""

    #: Whether ``parse_verbatim`` may pass the upstream's JSON through unparsed.
    verbatim: bool

    def to_payload(self, batch: list[str] | list[list[int]], *, encoding_format: str) -> bytes: ...

    def parse_response(self, body: bytes, *, n: int) -> Embeddings: ...

    def parse_verbatim(self, body: bytes, *, n: int) -> tuple[list[msgspec.Raw], int | None]: ...


class TextRanking(Protocol):
    """A query and documents → an upstream rerank payload; its answer → one score per document,
    in the order the documents were sent."""

    def to_payload(self, *, query: str, texts: list[str]) -> bytes: ...

    def parse_response(self, body: bytes, *, n: int) -> Scores: ...


class ChunkRewriter(Protocol):
    """An OpenAI-speaking upstream's answer or stream chunk → what the client must see."""

    def __call__(self, data: dict[str, Any], *, stream: bool) -> bytes: ...
