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
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        (
            {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"},
            "tool_choice",
        ),
        (
            {
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
            },
            "tool_choice",
        ),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"response_format": {"type": "grammar"}}, "response_format"),
    ],
)
def test_rejected_chat_fields_name_the_parameter(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        _params.from_chat(_chat(**fields))
    assert info.value.param == param


@pytest.mark.parametrize("choice", [None, "auto", "none"])
def test_tools_the_model_may_decline_are_allowed(choice: str | None) -> None:
    # The model answers in text, which these tool_choice values allow (Open WebUI sends tools).
    _params.from_chat(
        _chat(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice=choice)
    )


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
