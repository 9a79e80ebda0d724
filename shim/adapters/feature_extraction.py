"""feature-extraction on TEI (``/embed``), pipelines (toolkit / serverless hf-inference) and
OpenAI-style ``/v1/embeddings``. Pure: no I/O.

Every upstream shape is normalised to one vector per input by nesting depth (PROTOCOLS.md §4.2,
§11): flat ``[dim]``, ``[n][dim]``, token-level ``[1][tokens][dim]`` and ``[n][1][tokens][dim]``
(pooled over the *real* token vectors, then L2-normalised), and ``{"embeddings": ...}``.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import msgspec

from shim import hf
from shim.adapters._result import Embeddings
from shim.config import Pooling, Protocol
from shim.errors import InvalidRequestError, decode_answer, invalid_response

Inputs = list[str] | list[list[int]]

_any = msgspec.json.Decoder()
_vectors = msgspec.json.Decoder(list[list[float]])
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


def to_payload(
    protocol: Protocol,
    batch: Inputs,
    *,
    truncate: bool | None,
    normalize: bool,
    upstream_model: str,
    encoding_format: str = "float",
) -> bytes:
    if protocol == "tei":
        return _encoder.encode(
            hf.EmbedRequest(inputs=list(batch), truncate=truncate, normalize=normalize)
        )
    if protocol == "openai":
        return _encoder.encode(
            {"input": batch, "model": upstream_model, "encoding_format": encoding_format}
        )
    if batch and not isinstance(batch[0], str):
        raise InvalidRequestError(
            "Token-id input needs an upstream that accepts ids (TEI or OpenAI-style).",
            param="input",
        )
    texts = [t for t in batch if isinstance(t, str)]
    return _encoder.encode(hf.PipelineEmbedRequest(inputs=texts, truncate=truncate))


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        if not value:
            raise invalid_response("an empty list in the embeddings")
        value = value[0]
        depth += 1
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise invalid_response(f"embeddings contain {type(value).__name__}, not numbers")
    return depth


# Each nesting depth's full type: the first element decided the depth, these check the rest.
_SHAPES: dict[int, Any] = {
    1: list[float],
    2: list[list[float]],
    3: list[list[list[float]]],
    4: list[list[list[list[float]]]],
}


def pool(tokens: list[list[float]], pooling: Pooling) -> list[float]:
    """One vector from token vectors: the mean of all of them, or the first (CLS)."""
    if pooling == "cls":
        return list(tokens[0])
    if pooling == "none":
        raise invalid_response(
            'the upstream returned token-level vectors; set `pooling = "mean"` or "cls"'
        )
    count = len(tokens)
    try:
        return [sum(column) / count for column in zip(*tokens, strict=True)]
    except ValueError:
        raise invalid_response("token vectors of different lengths") from None


def l2_normalize(vector: list[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def to_vectors(value: Any, n: int, pooling: Pooling) -> tuple[list[list[float]], bool]:
    """One vector per input from any known shape; also whether shim pooled them."""
    depth = _depth(value)
    shape = _SHAPES.get(depth)
    if shape is None:
        raise invalid_response(f"unexpected embeddings shape (depth {depth}) for {n} inputs")
    try:
        value = msgspec.convert(value, shape)
    except msgspec.ValidationError as exc:
        raise invalid_response(f"embeddings: {exc}") from None
    if depth == 1:
        if n != 1:
            raise invalid_response(f"one vector for {n} inputs")
        return [value], False
    if depth == 2:
        if len(value) == n:
            return value, False
        if n == 1:
            return [pool(value, pooling)], True
    if depth == 3 and len(value) == n:
        return [pool(item, pooling) for item in value], True
    if depth == 4 and len(value) == n and all(len(item) == 1 for item in value):
        return [pool(item[0], pooling) for item in value], True
    raise invalid_response(f"unexpected embeddings shape (depth {depth}) for {n} inputs")


def _checked(vectors: list[list[float]], n: int) -> list[list[float]]:
    """``n`` vectors of one non-zero dimension (JSON numbers are finite: msgspec rejects
    ``1e400``)."""
    if len(vectors) != n:
        raise invalid_response(f"{len(vectors)} embeddings for {n} inputs")
    dims = {len(v) for v in vectors}
    if len(dims) != 1 or 0 in dims:
        raise invalid_response("embeddings of different or zero dimensions")
    return vectors


class _OpenAIItem(msgspec.Struct):
    index: int
    embedding: list[float]


class _OpenAIUsage(msgspec.Struct):
    prompt_tokens: hf.Count = 0


class _OpenAIResponse(msgspec.Struct):
    data: list[_OpenAIItem]
    usage: _OpenAIUsage | None = None


_openai = msgspec.json.Decoder(_OpenAIResponse)


def parse_response(
    protocol: Protocol, body: bytes, *, n: int, pooling: Pooling, normalize: bool
) -> Embeddings:
    if protocol == "openai":
        decoded = decode_answer(_openai, body, "embeddings")
        items = sorted(decoded.data, key=lambda item: item.index)
        usage = decoded.usage.prompt_tokens if decoded.usage else None
        return Embeddings(_checked([item.embedding for item in items], n), usage or None)
    if protocol == "tei":
        # TEI's /embed always answers [n][dim]: a typed decode, nothing to pool.
        return Embeddings(_checked(decode_answer(_vectors, body, "TEI /embed"), n))
    value = decode_answer(_any, body, "embeddings")
    if isinstance(value, dict):
        if "embeddings" not in value:
            raise invalid_response("an object without `embeddings`")
        value = value["embeddings"]
    vectors, _pooled = to_vectors(value, n, pooling)
    _checked(vectors, n)
    if normalize and protocol == "pipeline":
        # Pipelines may or may not normalise (it depends on the model): `normalize = true`
        # promises unit vectors. TEI was asked to normalise itself.
        vectors = [l2_normalize(v) for v in vectors]
    return Embeddings(vectors)


class _VerbatimItem(msgspec.Struct):
    index: int
    embedding: msgspec.Raw


class _VerbatimResponse(msgspec.Struct):
    data: list[_VerbatimItem]
    usage: _OpenAIUsage | None = None


_verbatim_tei = msgspec.json.Decoder(list[msgspec.Raw])
_verbatim_openai = msgspec.json.Decoder(_VerbatimResponse)


def parse_verbatim(
    protocol: Protocol, body: bytes, *, n: int
) -> tuple[list[msgspec.Raw], int | None]:
    """Each input's embedding as the upstream's own JSON (a number array, or a base64 string
    from an OpenAI-style upstream asked for base64), not parsed into floats: a 256-input answer
    is ~100k numbers, and decoding then re-encoding them was most of its cost. For ``tei`` and
    ``openai`` upstreams when the answer needs no change (no ``dimensions``)."""
    tokens: int | None = None
    if protocol == "tei":
        items = decode_answer(_verbatim_tei, body, "embeddings")
    else:
        decoded = decode_answer(_verbatim_openai, body, "embeddings")
        items = [item.embedding for item in sorted(decoded.data, key=lambda i: i.index)]
        tokens = decoded.usage.prompt_tokens if decoded.usage else None
    if len(items) != n:
        raise invalid_response(f"{len(items)} embeddings for {n} inputs")
    for item in items:
        if not _plausible(bytes(item)):
            raise invalid_response("an embedding is neither a number array nor base64")
    return items, tokens or None


# What a JSON array of numbers holds besides its brackets.
_NUMBER_TEXT = b"0123456789.eE+-, \t\r\n"


def _plausible(data: bytes) -> bool:
    """A non-empty flat number array or one string, checked without parsing the numbers (the
    bytes are valid JSON already: the decoder read them as one value)."""
    if data.startswith(b'"'):
        return data.count(b'"') == 2
    return (
        data.startswith(b"[")
        and data.translate(None, _NUMBER_TEXT) == b"[]"
        and bool(data[1:-1].strip())
    )


def conform(item: msgspec.Raw, encoding_format: str) -> msgspec.Raw | str | list[float]:
    """A verbatim embedding in the encoding the client asked for (an OpenAI-style upstream may
    ignore ``encoding_format``)."""
    is_base64 = memoryview(item)[:1].tobytes() == b'"'
    if (encoding_format == "base64") == is_base64:
        return item
    try:
        if is_base64:
            packed = base64.b64decode(msgspec.json.decode(item, type=str), validate=True)
            return list(struct.unpack(f"<{len(packed) // 4}f", packed))
        return to_base64(msgspec.json.decode(item, type=list[float]))
    except (ValueError, struct.error, msgspec.ValidationError):
        # binascii.Error is a ValueError; struct.error: not a whole number of float32s.
        raise invalid_response("an embedding that cannot be converted") from None


def shorten(vectors: list[list[float]], dimensions: int) -> list[list[float]]:
    """Matryoshka-style: keep the first ``dimensions`` values, then re-normalise."""
    dim = len(vectors[0]) if vectors else 0
    if dimensions > dim:
        raise InvalidRequestError(
            f"`dimensions` must be at most {dim} for this model.", param="dimensions"
        )
    return [l2_normalize(v[:dimensions]) for v in vectors]


def to_base64(vector: list[float]) -> str:
    """Little-endian float32 bytes, base64 (what the openai SDK decodes)."""
    try:
        packed = struct.pack(f"<{len(vector)}f", *vector)
    except OverflowError:
        raise invalid_response("an embedding value out of float32 range") from None
    return base64.b64encode(packed).decode("ascii")


def estimate_tokens(batch: Inputs) -> int:
    """Documented estimate when the upstream reports no counts: ids are counted exactly, text
    at ~4 characters per token plus 2 special tokens."""
    total = 0
    for item in batch:
        total += len(item) if isinstance(item, list) else (len(item) + 3) // 4 + 2
    return total
