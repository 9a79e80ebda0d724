"""Types shared by the OpenAI API routes: usage, models, stream options, the fields every answer
starts with.

Spec: https://github.com/openai/openai-openapi (``CompletionUsage``, ``Model``,
``ListModelsResponse``).
"""

from __future__ import annotations

from typing import Literal

import msgspec


class StreamOptions(msgspec.Struct):
    include_usage: bool = False
    # Newer SDKs may send it; shim never obfuscates.
    include_obfuscation: bool | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class Answer(msgspec.Struct, kw_only=True):
    """What every chat and completions answer and stream chunk starts with (a subclass sets
    ``object``; fields keep this order)."""

    id: str
    object: str
    created: int
    model: str
    # A string in OpenAI's schema, never null: omitted when unknown (always, on rendered protocols).
    system_fingerprint: str | msgspec.UnsetType = msgspec.UNSET


class Model(msgspec.Struct):
    id: str
    created: int
    owned_by: str
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct):
    data: list[Model]
    object: Literal["list"] = "list"
