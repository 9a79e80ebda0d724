"""Hugging Face wire types (the upstream side): TGI, the inference-toolkit pipeline, TEI, the
error bodies HF backends send, and the Hub files shim reads.

Request types omit unset fields (``omit_defaults``): TGI and the pipelines reject values they do
not expect, so nothing is sent that was not chosen. Response types are *views*: only the
fields shim reads, enums read as plain strings. See PROTOCOLS.md §1, §3, §4, §11.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

#: The largest token count believed (more would overflow the float counters it feeds).
MAX_COUNT = 2**53
#: A token count: never negative, never huge (it feeds counters and rate limits).
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]


class GenerateParameters(msgspec.Struct, omit_defaults=True):
    # TGI rejects 0; pipelines stop at 20 tokens (prompt included) without it.
    max_new_tokens: int | None = None
    # false = greedy. TGI rejects temperature <= 0, so temperature 0 becomes do_sample=false.
    do_sample: bool | None = None
    temperature: float | None = None
    # TGI rejects top_p >= 1; omitted then.
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    # TGI only (additive, OpenAI-style); pipelines reject it.
    frequency_penalty: float | None = None
    # TGI: list of at most 4 strings; pipelines reject it (shim truncates instead).
    stop: list[str] | None = None
    # TGI only.
    seed: int | None = None
    # Always false where accepted: the prompt must never leak into the answer.
    return_full_text: bool | None = None
    # TGI: finish reason and token counts.
    details: bool | None = None
    # TGI: top-n alternatives per token (<= 5), for OpenAI top_logprobs.
    top_n_tokens: int | None = None
    # TGI grammar: {"type": "json" | "regex", "value": ...}
    grammar: dict[str, Any] | None = None


class GenerateRequest(msgspec.Struct, omit_defaults=True):
    """TGI ``/generate`` and ``/generate_stream``, and the pipeline's ``POST /`` body."""

    inputs: str
    parameters: GenerateParameters


class Token(msgspec.Struct):
    text: str
    logprob: float | None = None
    special: bool = False
    id: int | None = None


class Details(msgspec.Struct):
    # "length" | "eos_token" | "stop_sequence" (read as a string: new values must not break us)
    finish_reason: str | None = None
    generated_tokens: Count | None = None
    # Prompt tokens (TGI >= 2.x streams; absent on older servers).
    input_length: Count | None = None
    tokens: list[Token] | None = None
    top_tokens: list[list[Token]] | None = None
    prefill: list[Token] | None = None


class GenerateResponse(msgspec.Struct):
    """TGI ``/generate`` object, one element of ``POST /`` lists, and pipeline outputs."""

    # Required: an answer without it is invalid, not an empty answer.
    generated_text: str
    details: Details | None = None


class StreamResponse(msgspec.Struct):
    """One TGI ``/generate_stream`` event (or an error event on the same 200 stream).

    ``token`` is required unless ``error`` is set (checked by the adapter)."""

    token: Token | None = None
    top_tokens: list[Token] | None = None
    generated_text: str | None = None
    details: Details | None = None
    error: str | None = None
    error_type: str | None = None


class EmbedRequest(msgspec.Struct, omit_defaults=True):
    """TEI ``POST /embed``: options at the top level."""

    # str | list[str] | list[int] | list[list[int]]
    inputs: str | list[str | int | list[int]]
    truncate: bool | None = None
    normalize: bool | None = None


class PipelineEmbedParameters(msgspec.Struct, omit_defaults=True):
    # transformers' FeatureExtractionPipeline keyword (tokenizer truncation to the model's max).
    truncation: bool | None = None


class PipelineEmbedRequest(msgspec.Struct, omit_defaults=True):
    """Feature-extraction pipeline (toolkit / serverless hf-inference).

    Serverless hf-inference reads ``truncate`` at the top level (HF's feature-extraction task
    spec); the inference toolkit ignores top-level keys and passes ``parameters`` to the
    transformers pipeline as keywords (its ``handler.py``; sentence-transformers pipelines get
    none), so truncation is sent both ways.
    """

    inputs: str | list[str]
    truncate: bool | None = None
    normalize: bool | None = None
    parameters: PipelineEmbedParameters | None = None


class TEIInfo(msgspec.Struct):
    """TEI ``GET /info``, the field shim reads (its batch limit)."""

    max_client_batch_size: int | None = None


class ErrorResponse(msgspec.Struct):
    """Every error body HF backends send, read tolerantly.

    TGI/TEI/serverless: ``{"error": str, "error_type": str}`` (+ ``estimated_time`` when loading);
    OpenAI-style routes: ``{"error": {"message", ...}}``; TEI ``/v1/embeddings`` and vLLM's
    older ``{"object": "error", "message", "type"}``: flat; FastAPI/pydantic servers
    (``transformers serve``, the inference toolkit's starlette app): ``{"detail": str}`` or
    ``{"detail": [{"loc", "msg", "type"}]}``.
    """

    error: str | dict[str, Any] | None = None
    error_type: str | None = None
    message: str | None = None
    type: str | None = None
    estimated_time: float | None = None
    detail: str | list[Any] | None = None


class TokenizerConfig(msgspec.Struct):
    """A Hub repo's ``tokenizer_config.json``: the chat template and its special tokens."""

    # One template, or named ones ([{"name": "default", "template": ...}, ...]).
    chat_template: str | list[dict[str, str]] | None = None
    bos_token: str | dict[str, Any] | None = None
    eos_token: str | dict[str, Any] | None = None


# --- an OpenAI-style upstream's embeddings (TEI's /v1/embeddings, vLLM), as shim reads them ---


class PromptUsage(msgspec.Struct):
    prompt_tokens: Count = 0


class FloatEmbedding(msgspec.Struct):
    index: int
    embedding: list[float]


class FloatEmbeddingList(msgspec.Struct):
    data: list[FloatEmbedding]
    usage: PromptUsage | None = None


class RawEmbedding(msgspec.Struct):
    """The embedding as the upstream's own JSON (floats or base64), passed through unparsed."""

    index: int
    embedding: msgspec.Raw


class RawEmbeddingList(msgspec.Struct):
    data: list[RawEmbedding]
    usage: PromptUsage | None = None


class RerankRequest(msgspec.Struct, omit_defaults=True, kw_only=True):
    """TEI ``POST /rerank`` (router/src/http/types.rs ``RerankRequest``). TEI answers 422 when
    ``texts`` is longer than ``/info``'s ``max_client_batch_size``, 400 when it is empty."""

    query: str
    texts: list[str]
    # false: sigmoid-normalised scores; true: the model's logits. Required fields, so they
    # are always sent (only `truncate` is left to TEI's `--auto-truncate` when unset).
    raw_scores: bool
    # shim puts the documents back itself: TEI never needs to send them.
    return_text: bool
    truncate: bool | None = None


class Rank(msgspec.Struct):
    """One element of TEI's ``/rerank`` answer (sorted best first; ``text`` not read)."""

    index: int
    score: float


class PipelineRankRequest(msgspec.Struct):
    """The inference toolkit's text-ranking task (its sentence-transformers
    ``SentenceRankingPipeline``): ``inputs`` as ``[query, text]`` pairs, scored with
    ``CrossEncoder.predict`` in input order. (The toolkit ignores ``parameters`` here.)"""

    inputs: list[tuple[str, str]]


class PipelineRankScores(msgspec.Struct):
    """Its answer to pairs: ``{"scores": [...]}`` in input order (a bare number for one pair
    sent unnested, which shim never does but reads)."""

    scores: list[float] | float
