"""Every OpenAI request field is mapped, ignored on purpose, or rejected (STYLE rule 6)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from shim.adapters import _params
from shim.errors import InvalidRequestError
from shim.openai import chat, completions


def test_every_chat_field_is_accounted_for() -> None:
    fields = set(chat.ChatCompletionRequest.__struct_fields__)
    mapped, ignored, rejected = (
        _params.CHAT_MAPPED,
        set(_params.CHAT_IGNORED),
        set(_params.CHAT_REJECTED),
    )
    assert not (mapped & ignored) and not (mapped & rejected) and not (ignored & rejected)
    assert fields == mapped | ignored | rejected


def test_every_completion_field_is_accounted_for() -> None:
    fields = set(completions.CompletionRequest.__struct_fields__)
    assert fields == _params.COMPLETION_MAPPED | set(_params.COMPLETION_IGNORED) | set(
        _params.COMPLETION_REJECTED
    )


def _chat(**fields: Any) -> chat.ChatCompletionRequest:
    return msgspec.convert(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields},
        chat.ChatCompletionRequest,
    )


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"audio": {"voice": "x"}}, "audio"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"response_format": {"type": "grammar"}}, "response_format"),
    ],
)
def test_rejected_chat_fields_name_the_parameter(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        _params.from_chat(_chat(**fields))
    assert info.value.param == param


TOOL_FIELDS = {
    "auto": {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"},
    "none": {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"},
    "required": {
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    },
    "legacy": {"functions": [{"name": "f"}], "function_call": {"name": "f"}},
}


@pytest.mark.parametrize("fields", TOOL_FIELDS.values(), ids=TOOL_FIELDS.keys())
def test_tool_fields_are_left_to_the_tool_plan(fields: dict[str, Any]) -> None:
    # Tools are read by `_tools.plan_request` (template, grammar, parser), not the sampling.
    params = _params.from_chat(_chat(**fields))
    assert params.grammar is None


def test_completion_rejections() -> None:
    with pytest.raises(InvalidRequestError) as info:
        _params.from_completion(
            msgspec.convert(
                {"model": "m", "prompt": "p", "suffix": "s"}, completions.CompletionRequest
            )
        )
    assert info.value.param == "suffix"
    with pytest.raises(InvalidRequestError) as info:
        _params.from_completion(
            msgspec.convert(
                {"model": "m", "prompt": "p", "best_of": 3}, completions.CompletionRequest
            )
        )
    assert info.value.param == "best_of"


def test_completion_logprobs_and_echo() -> None:
    params = _params.from_completion(
        msgspec.convert(
            {"model": "m", "prompt": "p", "logprobs": 2, "echo": True},
            completions.CompletionRequest,
        )
    )
    assert (params.logprobs, params.top_logprobs, params.echo) == (True, 2, True)
