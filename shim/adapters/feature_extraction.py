"""feature-extraction on TEI (``/embed``), pipelines (toolkit / serverless hf-inference) and
OpenAI-style ``/v1/embeddings``: one adapter per protocol, options bound at config load. Pure.

Every upstream shape is normalised to one vector per input (``_vectors``; PROTOCOLS.md §4.2,
§11): flat ``[dim]``, ``[n][dim]``, token-level ``[1][tokens][dim]`` and ``[n][1][tokens][dim]``
(pooled over the *real* token vectors, then L2-normalised), and ``{"embeddings": ...}``.
"""

from __future__ import annotations

import msgspec

from shim import hf
from shim.adapters import _vectors
from shim.adapters._result import Embeddings, estimate_tokens
from shim.config import Pooling, Protocol
from shim.errors import InvalidRequestError, decode_answer, invalid_response

Inputs = list[str] | list[list[int]]

_any = msgspec.json.Decoder()
_vectors_of = msgspec.json.Decoder(list[list[float]])
_verbatim_tei = msgspec.json.Decoder(list[msgspec.Raw])
_openai = msgspec.json.Decoder(hf.FloatEmbeddingList)
_verbatim_openai = msgspec.json.Decoder(hf.RawEmbeddingList)
_encoder = msgspec.json.Encoder()


def inputs_of(value: str | list[str | int | list[int]]) -> tuple[Inputs, bool]:
    """OpenAI ``input`` as a batch of texts or of token-id lists; rejects what OpenAI rejects."""
    if isinstance(value, str):
        if not value:
            raise InvalidRequestError("`input` must not be an empty string.", param="input")
        return [value], True
    if not value:
        raise InvalidRequestError("`input` must not be an empty list.", param="input")
    if all(isinstance(v, str) for v in value):
        texts = [v for v in value if isinstance(v, str)]
        for i, text in enumerate(texts):
            if not text:
                raise InvalidRequestError(
                    f"`input[{i}]` must not be an empty string.", param=f"input[{i}]"
                )
        return texts, False
    if all(isinstance(v, int) for v in value):
        return [[v for v in value if isinstance(v, int)]], True
    if all(isinstance(v, list) for v in value):
        ids = [v for v in value if isinstance(v, list)]
        for i, item in enumerate(ids):
            if not item:
                raise InvalidRequestError(f"`input[{i}]` must not be empty.", param=f"input[{i}]")
        return ids, False
    raise InvalidRequestError(
        "`input` must be a string, a list of strings, a list of token ids, or a list of "
        "token-id lists (not a mix).",
        param="input",
    )


def estimate_batch_tokens(batch: Inputs) -> int:
    """Documented estimate when the upstream reports no counts: ids are counted exactly, text
    as ``estimate_tokens`` plus 2 special tokens per input."""
    return sum(len(item) if isinstance(item, list) else estimate_tokens(item) + 2 for item in batch)


class TEI:
    """TEI ``POST /embed``: ``[n][dim]`` answers, normalised by TEI itself when asked."""

    verbatim: bool = True

    def __init__(self, *, truncate: bool | None, normalize: bool) -> None:
        self.truncate = truncate
        self.normalize = normalize

    def to_payload(self, batch: Inputs, *, encoding_format: str) -> bytes:
        request = hf.EmbedRequest(
            inputs=list(batch), truncate=self.truncate, normalize=self.normalize
        )
        return _encoder.encode(request)

    def parse_response(self, body: bytes, *, n: int) -> Embeddings:
        # TEI's /embed always answers [n][dim]: a typed decode, nothing to pool.
        return Embeddings(_vectors.checked(decode_answer(_vectors_of, body, "TEI /embed"), n))

    def parse_verbatim(self, body: bytes, *, n: int) -> tuple[list[msgspec.Raw], int | None]:
        items = decode_answer(_verbatim_tei, body, "embeddings")
        return _verbatim(items, n), None


class Pipeline:
    """The feature-extraction pipeline (toolkit / serverless hf-inference): any nesting of
    vectors, token-level ones pooled here; text only."""

    verbatim: bool = False

    def __init__(self, *, truncate: bool | None, normalize: bool, pooling: Pooling) -> None:
        self.truncate = truncate
        self.normalize = normalize
        self.pooling = pooling
        self._parameters = (
            None if truncate is None else hf.PipelineEmbedParameters(truncation=truncate)
        )

    def _request(self, texts: list[str]) -> hf.PipelineEmbedRequest:
        return hf.PipelineEmbedRequest(
            inputs=texts, truncate=self.truncate, parameters=self._parameters
        )

    def to_payload(self, batch: Inputs, *, encoding_format: str) -> bytes:
        texts = [t for t in batch if isinstance(t, str)]
        if len(texts) != len(batch):
            raise InvalidRequestError(
                "Token-id input needs an upstream that accepts ids (TEI or OpenAI-style).",
                param="input",
            )
        return _encoder.encode(self._request(texts))

    def parse_response(self, body: bytes, *, n: int) -> Embeddings:
        value = decode_answer(_any, body, "embeddings")
        if isinstance(value, dict):
            if "embeddings" not in value:
                raise invalid_response("an object without `embeddings`")
            value = value["embeddings"]
        vectors, _pooled = _vectors.to_vectors(value, n, self.pooling)
        _vectors.checked(vectors, n)
        if self.normalize:
            # Pipelines may or may not normalise (it depends on the model): `normalize = true`
            # promises unit vectors.
            vectors = [_vectors.l2_normalize(v) for v in vectors]
        return Embeddings(vectors)

    def parse_verbatim(self, body: bytes, *, n: int) -> tuple[list[msgspec.Raw], int | None]:
        raise NotImplementedError  # pragma: no cover - ``verbatim`` is False: never called


class OpenAIStyle:
    """OpenAI-style ``/v1/embeddings`` (TEI's OpenAI route, vLLM): encodes as asked."""

    verbatim: bool = True

    def __init__(self, *, upstream_model: str) -> None:
        self.upstream_model = upstream_model

    def to_payload(self, batch: Inputs, *, encoding_format: str) -> bytes:
        request = {"input": batch, "model": self.upstream_model, "encoding_format": encoding_format}
        return _encoder.encode(request)

    def parse_response(self, body: bytes, *, n: int) -> Embeddings:
        decoded = decode_answer(_openai, body, "embeddings")
        items = sorted(decoded.data, key=lambda item: item.index)
        usage = decoded.usage.prompt_tokens if decoded.usage else None
        return Embeddings(_vectors.checked([item.embedding for item in items], n), usage or None)

    def parse_verbatim(self, body: bytes, *, n: int) -> tuple[list[msgspec.Raw], int | None]:
        decoded = decode_answer(_verbatim_openai, body, "embeddings")
        items = [item.embedding for item in sorted(decoded.data, key=lambda i: i.index)]
        tokens = decoded.usage.prompt_tokens if decoded.usage else None
        return _verbatim(items, n), tokens or None


def _verbatim(items: list[msgspec.Raw], n: int) -> list[msgspec.Raw]:
    """Verbatim embeddings (each input's embedding as the upstream's own JSON, not parsed into
    floats: a 256-input answer is ~100k numbers, and decoding then re-encoding them was most of
    its cost), checked for count and shape."""
    if len(items) != n:
        raise invalid_response(f"{len(items)} embeddings for {n} inputs")
    for item in items:
        if not _vectors.plausible(bytes(item)):
            raise invalid_response("an embedding is neither a number array nor base64")
    return items


def for_protocol(
    protocol: Protocol,
    *,
    truncate: bool | None,
    normalize: bool,
    pooling: Pooling,
    upstream_model: str,
) -> TEI | Pipeline | OpenAIStyle:
    """The adapter for a feature-extraction model's protocol (chosen at config load)."""
    if protocol == "tei":
        return TEI(truncate=truncate, normalize=normalize)
    if protocol == "openai":
        return OpenAIStyle(upstream_model=upstream_model)
    return Pipeline(truncate=truncate, normalize=normalize, pooling=pooling)
