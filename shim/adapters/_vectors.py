"""Embedding vectors: any upstream nesting reduced to one vector per input (pooling token
vectors), normalisation, Matryoshka shortening, and the base64 encoding OpenAI clients read.
Pure. PROTOCOLS.md §4.2, §11.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import msgspec

from shim.config import Pooling
from shim.errors import InvalidRequestError, invalid_response


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


def checked(vectors: list[list[float]], n: int) -> list[list[float]]:
    """``n`` vectors of one non-zero dimension (JSON numbers are finite: msgspec rejects
    ``1e400``)."""
    if len(vectors) != n:
        raise invalid_response(f"{len(vectors)} embeddings for {n} inputs")
    dims = {len(v) for v in vectors}
    if len(dims) != 1 or 0 in dims:
        raise invalid_response("embeddings of different or zero dimensions")
    return vectors


# What a JSON array of numbers holds besides its brackets.
_NUMBER_TEXT = b"0123456789.eE+-, \t\r\n"


def plausible(data: bytes) -> bool:
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
