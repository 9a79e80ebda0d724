"""Responses API requests: every field accounted for, input read into items, and the
translation to a chat request (tables)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from openai.types.responses import response_create_params

from shim.adapters import response_chat, responses
from shim.errors import InvalidRequestError
from shim.openai import chat
from shim.openai import responses as rs

RID = "resp_abc"
_decode = msgspec.json.Decoder(rs.ResponseCreateRequest)


def _req(**fields: Any) -> rs.ResponseCreateRequest:
    return msgspec.convert({"model": "m", "input": "hi", **fields}, rs.ResponseCreateRequest)


def _chat(req: rs.ResponseCreateRequest, *, text_only: bool = True) -> chat.ChatCompletionRequest:
    items = responses.read_input(req, response_id=RID, text_only=text_only)
    return response_chat.to_chat(req, items, text_only=text_only)


def _wire(req: chat.ChatCompletionRequest) -> dict[str, Any]:
    return msgspec.to_builtins(req)  # type: ignore[no-any-return]


def test_every_field_is_accounted_for() -> None:
    fields = set(rs.ResponseCreateRequest.__struct_fields__)
    mapped, ignored, rejected = responses.MAPPED, set(responses.IGNORED), set(responses.REJECTED)
    assert not (mapped & ignored) and not (mapped & rejected) and not (ignored & rejected)
    assert fields == mapped | ignored | rejected


def test_every_field_the_sdk_can_send_is_read() -> None:
    # A new SDK parameter must be mapped, ignored or rejected, never dropped unseen.
    params = response_create_params.ResponseCreateParamsStreaming
    sdk = params.__required_keys__ | params.__optional_keys__
    unread = sdk - set(rs.ResponseCreateRequest.__struct_fields__)
    assert not unread, f"add to ResponseCreateRequest and map, ignore or reject: {sorted(unread)}"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"context_management": [{"type": "compaction"}]}, "context_management"),
        ({"moderation": {"model": "omni"}}, "moderation"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"truncation": "auto"}, "truncation"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "name": "f"}, {"type": "mcp"}]}, "tools[1].type"),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice.type"),
        ({"tool_choice": {"type": "function", "name": "g"}}, "tool_choice.name"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"input": None}, "input"),
        ({"input": []}, "input"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        ({"input": [{"type": "item_reference"}]}, "input[0].id"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        ({"input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "u"}]}]},
            "input[0].content[0].type",
        ),
        (
            {
                "input": [
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [{"type": "input_image"}],
                    }
                ]
            },
            "input[0].output[0].type",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_rejected_with_the_parameter_named(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        responses.read_input(_req(**fields), response_id=RID, text_only=True)
    assert info.value.param == param


@pytest.mark.parametrize(
    "fields",
    [
        {"background": False, "truncation": "disabled", "top_logprobs": 0},
        {"user": "u", "safety_identifier": "s", "prompt_cache_key": "k", "service_tier": "flex"},
        {"reasoning": {"effort": "high"}, "include": ["reasoning.encrypted_content"]},
        {"stream_options": {"include_obfuscation": False}, "max_tool_calls": 3},
    ],
    ids=["unset-rejected", "ignored-ids", "ignored-reasoning", "ignored-stream"],
)
def test_accepted(fields: dict[str, Any]) -> None:
    assert _chat(_req(**fields)).messages[0].content == "hi"


def test_a_too_small_max_output_tokens_fails_decoding() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_output_tokens"):
        _decode.decode(b'{"model": "m", "input": "x", "max_output_tokens": 0}')


# --- input → items ----------------------------------------------------------------------------


def test_string_input_is_one_user_message() -> None:
    items = responses.read_input(_req(), response_id=RID, text_only=True)
    assert items == [rs.Message(id="msg_abc_i0", role="user", content=[rs.InputText("hi")])]


def test_item_kinds_and_ids() -> None:
    req = _req(
        input=[
            {"role": "developer", "content": "be brief"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "assistant", "content": "a", "id": "msg_old"},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
            {
                "type": "function_call_output",
                "call_id": "call_2",
                "output": [
                    {"type": "input_text", "text": "4"},
                    {"type": "input_text", "text": "3"},
                ],
            },
        ]
    )
    items = responses.read_input(req, response_id=RID, text_only=True)
    assert items == [
        rs.Message(id="msg_abc_i0", role="developer", content=[rs.InputText("be brief")]),
        rs.Message(id="msg_abc_i1", role="user", content=[rs.InputText("q")]),
        rs.Message(id="msg_old", role="assistant", content=[rs.OutputText("a")]),
        rs.FunctionCall(id="fc_abc_i4", call_id="call_1", name="f", arguments="{}"),
        rs.FunctionCallOutput(id="fco_abc_i5", call_id="call_1", output="42"),
        rs.FunctionCallOutput(id="fco_abc_i6", call_id="call_2", output="43"),
    ]


def test_images_pass_on_multimodal_upstreams() -> None:
    part = {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}
    req = _req(input=[{"role": "user", "content": [{"type": "input_text", "text": "what?"}, part]}])
    message = _chat(req, text_only=False).messages[0]
    assert _wire(message)["content"] == [
        {"type": "text", "text": "what?", "image_url": None},
        {
            "type": "image_url",
            "text": None,
            "image_url": {"url": part["image_url"], "detail": "low"},
        },
    ]


@pytest.mark.parametrize(
    ("item_id", "response_id"),
    [
        ("msg_abc_0", "resp_abc"),
        ("fc_abc_i12", "resp_abc"),
        ("msg_old", None),
        ("msg__0", None),
        ("plain", None),
    ],
    ids=["output", "input", "foreign", "empty-key", "no-prefix"],
)
def test_an_item_id_names_its_response(item_id: str, response_id: str | None) -> None:
    assert responses.response_of(item_id) == response_id
    if response_id is not None:
        prefix, _, n = item_id.replace("_abc", "").partition("_")
        assert responses.item_id(prefix, response_id, n) == item_id


def test_references_are_left_for_resolve_then_resolved_in_place() -> None:
    stored: list[rs.Item] = [
        rs.Message(id="msg_old_i0", role="user", content=[rs.InputText("q")]),
        rs.ReasoningItem(id="rs_old_0", content=[rs.ReasoningText("hmm")]),
        rs.Message(id="msg_old_1", role="assistant", content=[rs.OutputText("a")]),
    ]
    req = _req(
        input=[
            {"type": "item_reference", "id": "msg_old_i0"},
            {"id": "rs_old_0"},
            {"type": "item_reference", "id": "msg_old_1"},
            {"role": "user", "content": "more"},
        ]
    )
    items = responses.read_input(req, response_id=RID, text_only=True)
    assert items[:3] == [
        responses.Reference("msg_old_i0", "resp_old", "input[0].id"),
        responses.Reference("rs_old_0", "resp_old", "input[1].id"),
        responses.Reference("msg_old_1", "resp_old", "input[2].id"),
    ]
    # The reasoning item is dropped, as reasoning input is.
    assert responses.resolve(items, {"resp_old": stored}) == [stored[0], stored[2], items[3]]
    with pytest.raises(InvalidRequestError) as info:
        responses.resolve(items, {"resp_old": stored[1:]})
    assert info.value.param == "input[0].id"


def test_conversation_keeps_a_resent_item_once() -> None:
    old = rs.FunctionCall(id="fc_1", call_id="call_1", name="f", arguments="{}")
    new = rs.FunctionCallOutput(id="fco_2", call_id="call_1", output="ok")
    assert responses.conversation([old], [old, new]) == [old, new]


# --- items → chat -------------------------------------------------------------------------------


def test_history_then_instructions_first_then_input() -> None:
    history: list[rs.Item] = [
        rs.Message(id="msg_0", role="user", content=[rs.InputText("weather?")]),
        rs.Message(id="msg_1", role="assistant", content=[rs.OutputText("Let me look.")]),
        rs.FunctionCall(id="fc_1", call_id="call_1", name="weather", arguments='{"c":"Paris"}'),
        rs.FunctionCall(id="fc_2", call_id="call_2", name="weather", arguments='{"c":"Rome"}'),
        rs.ReasoningItem(id="rs_1", content=[rs.ReasoningText("hmm")]),
    ]
    req = _req(
        instructions="Be terse.",
        input=[
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": "rain"},
        ],
        previous_response_id="resp_prev",
    )
    items = responses.read_input(req, response_id=RID, text_only=True)
    messages = _wire(
        response_chat.to_chat(req, responses.conversation(history, items), text_only=True)
    )
    assert [
        (m["role"], m["content"], m["tool_calls"], m["tool_call_id"]) for m in messages["messages"]
    ] == [
        ("system", "Be terse.", None, None),
        ("user", "weather?", None, None),
        (
            "assistant",
            "Let me look.",
            [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"c":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"c":"Rome"}'},
                },
            ],
            None,
        ),
        ("tool", "sunny", None, "call_1"),
        ("tool", "rain", None, "call_2"),
    ]


@pytest.mark.parametrize(
    ("content", "role", "expected"),
    [
        ("hi", "developer", ("system", "hi")),
        ([{"type": "input_text", "text": "a"}], "system", ("system", "a")),
        (
            [{"type": "output_text", "text": "a"}, {"type": "refusal", "refusal": "no"}],
            "assistant",
            (
                "assistant",
                [
                    {"type": "text", "text": "a", "image_url": None},
                    {"type": "text", "text": "no", "image_url": None},
                ],
            ),
        ),
    ],
    ids=["developer-is-system", "parts-one-string", "assistant-parts"],
)
def test_message_content(content: Any, role: str, expected: tuple[str, Any]) -> None:
    message = _wire(_chat(_req(input=[{"role": role, "content": content}])))["messages"][0]
    assert (message["role"], message["content"]) == expected


def test_an_image_in_history_is_refused_on_text_only_models() -> None:
    image = rs.Message(id="m", role="user", content=[rs.InputImage("http://x/i.png")])
    with pytest.raises(InvalidRequestError) as info:
        response_chat.to_chat(_req(), [image], text_only=True)
    assert info.value.param == "previous_response_id"


FUNCTION = {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"model": "m", "stream": None, "stream_options": None, "tools": None}),
        ({"model": "llama", "max_output_tokens": 64, "temperature": 0.2, "top_p": 0.9},
         {"model": "llama", "max_completion_tokens": 64, "temperature": 0.2, "top_p": 0.9}),
        ({"stream": True}, {"stream": True, "stream_options": {"include_usage": True, "include_obfuscation": None}}),
        ({"tools": [FUNCTION], "parallel_tool_calls": False},
         {"tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
          "parallel_tool_calls": False, "tool_choice": None}),
        ({"tools": [{**FUNCTION, "strict": True}], "tool_choice": "required"},
         {"tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True}}],
          "tool_choice": "required"}),
        ({"tools": [FUNCTION], "tool_choice": {"type": "function", "name": "f"}},
         {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
        ({"text": {"format": {"type": "text"}}}, {"response_format": None}),
        ({"text": {"format": {"type": "json_object"}}}, {"response_format": {"type": "json_object"}}),
        ({"text": {"format": {"type": "json_schema", "name": "p", "schema": {"type": "object"}, "strict": True}}},
         {"response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}, "strict": True}}}),
        ({"text": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
         {"response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}}}),
        ({"store": False, "metadata": {"k": "v"}, "user": "u", "reasoning": {"effort": "low"}},
         {"store": None, "metadata": None, "user": None, "reasoning_effort": None}),
    ],
    ids=["defaults", "sampling", "stream-usage", "tools", "tool-choice-str", "tool-choice-fn",
         "format-text", "format-json-object", "format-schema", "format-schema-unnamed", "not-forwarded"],
)  # fmt: skip
def test_to_chat_parameters(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    wire = _wire(_chat(_req(**fields)))
    assert {key: wire.get(key) for key in expected} == expected
