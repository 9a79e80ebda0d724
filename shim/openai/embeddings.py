"""``POST /v1/embeddings`` wire types.

Spec: openai-openapi ``CreateEmbeddingRequest`` / ``CreateEmbeddingResponse``. The openai Python
SDK asks for ``encoding_format: "base64"`` by default (PROTOCOLS.md §0.18).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from shim.openai.common import EmbeddingUsage

# str | list[str] | list[int] | list[list[int]]; list items are checked by the adapter (msgspec
# takes one array type per union).
EmbeddingInput = str | list[str | int | list[int]]


class EmbeddingRequest(msgspec.Struct):
    model: str
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # Ignored: an end-user id for OpenAI's abuse monitoring.
    user: str | None = None


class Embedding(msgspec.Struct, kw_only=True):
    object: Literal["embedding"] = "embedding"
    index: int
    # floats, or base64 of little-endian float32 bytes; Raw: the upstream's own JSON for
    # either, passed through verbatim when shim has nothing to change in it.
    embedding: list[float] | str | msgspec.Raw


class CreateEmbeddingResponse(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
