"""TGI and pipeline adapters: payloads built, responses and stream events parsed (no HTTP)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from shim.adapters import _params
from shim.adapters.text_generation import TGI, Pipeline
from shim.errors import UpstreamError, UpstreamRejectedError
from shim.openai import chat

_enc = msgspec.json.Encoder()


def chat_params(**fields: Any) -> _params.GenerationParams:
    req = msgspec.convert(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields},
        chat.ChatCompletionRequest,
    )
    return _params.from_chat(req)


def tgi_parameters(stop: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    payload = TGI().to_payload(chat_params(**fields), prompt="P", stop=stop or [], default_max=None)
    body = json.loads(_enc.encode(payload))
    assert body["inputs"] == "P"
    parameters: dict[str, Any] = body["parameters"]
    return parameters


ALWAYS = {"return_full_text": False, "details": True}

TGI_PAYLOADS = [
    pytest.param({}, {"do_sample": True, **ALWAYS}, id="defaults-sample-like-tgi-chat"),
    pytest.param({"temperature": 0}, {"do_sample": False, **ALWAYS}, id="temperature-0-greedy"),
    pytest.param(
        {"temperature": 0.7, "top_p": 0.9},
        {"do_sample": True, "temperature": 0.7, "top_p": 0.9, **ALWAYS},
        id="sampling",
    ),
    pytest.param({"top_p": 1.0}, {"do_sample": True, **ALWAYS}, id="top_p-1-omitted"),
    pytest.param(
        {"max_tokens": 5}, {"max_new_tokens": 5, "do_sample": True, **ALWAYS}, id="max_tokens"
    ),
    pytest.param(
        {"max_completion_tokens": 7, "max_tokens": 5},
        {"max_new_tokens": 7, "do_sample": True, **ALWAYS},
        id="max_completion_tokens-wins",
    ),
    pytest.param({"seed": 42}, {"seed": 42, "do_sample": True, **ALWAYS}, id="seed"),
    pytest.param(
        {"frequency_penalty": 0.5},
        {"frequency_penalty": 0.5, "do_sample": True, **ALWAYS},
        id="frequency_penalty",
    ),
    pytest.param(
        {"presence_penalty": 1.0},
        {"repetition_penalty": 1.5, "do_sample": True, **ALWAYS},
        id="presence_penalty-to-repetition",
    ),
    pytest.param(
        {"presence_penalty": -1.0}, {"do_sample": True, **ALWAYS}, id="negative-presence-dropped"
    ),
    pytest.param(
        {"logprobs": True, "top_logprobs": 9},
        {"do_sample": True, "top_n_tokens": 5, **ALWAYS},
        id="top_logprobs-capped-at-5",
    ),
    pytest.param(
        {"response_format": {"type": "json_object"}},
        {"do_sample": True, "grammar": {"type": "json", "value": {"type": "object"}}, **ALWAYS},
        id="json-mode-grammar",
    ),
    pytest.param(
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "array"}},
            }
        },
        {"do_sample": True, "grammar": {"type": "json", "value": {"type": "array"}}, **ALWAYS},
        id="json-schema-grammar",
    ),
    pytest.param({"user": "u", "store": True}, {"do_sample": True, **ALWAYS}, id="ignored-fields"),
]


@pytest.mark.parametrize(("fields", "expected"), TGI_PAYLOADS)
def test_tgi_payload(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert tgi_parameters(**fields) == expected


def test_tgi_stop_string_becomes_list_and_is_capped_at_four() -> None:
    assert tgi_parameters(stop=["a"])["stop"] == ["a"]
    assert tgi_parameters(stop=list("abcdef"))["stop"] == list("abcd")
    assert chat_params(stop="x").stop == ["x"]


def pipeline_parameters(task_flag: bool = True, **fields: Any) -> dict[str, Any]:
    payload = Pipeline(full_text_flag=task_flag).to_payload(
        chat_params(**fields), prompt="P", stop=["</s>"], default_max=None
    )
    parameters: dict[str, Any] = json.loads(_enc.encode(payload))["parameters"]
    return parameters


PIPELINE_PAYLOADS = [
    pytest.param({}, {"max_new_tokens": 256, "return_full_text": False}, id="defaults-greedy"),
    pytest.param(
        {"temperature": 0.5, "seed": 3, "stop": ["x"], "frequency_penalty": 1},
        {"max_new_tokens": 256, "do_sample": True, "temperature": 0.5, "return_full_text": False},
        id="never-stop-seed-or-frequency",
    ),
    pytest.param(
        {"temperature": 0},
        {"max_new_tokens": 256, "do_sample": False, "return_full_text": False},
        id="greedy",
    ),
    pytest.param(
        {"max_tokens": 9}, {"max_new_tokens": 9, "return_full_text": False}, id="max_tokens"
    ),
]


@pytest.mark.parametrize(("fields", "expected"), PIPELINE_PAYLOADS)
def test_pipeline_payload(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert pipeline_parameters(**fields) == expected


def test_text2text_pipeline_never_sends_return_full_text() -> None:
    assert pipeline_parameters(task_flag=False) == {"max_new_tokens": 256}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_pipeline_rejects_what_it_cannot_do(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(Exception) as info:
        pipeline_parameters(**fields)
    assert getattr(info.value, "param", None) == param
    assert getattr(info.value, "status_code", None) == 400


DETAILS = {
    "finish_reason": "eos_token",
    "generated_tokens": 3,
    "seed": None,
    "prefill": [],
    "tokens": [],
}
RESPONSES = [
    pytest.param({"generated_text": "hi", "details": DETAILS}, "hi", "stop", 3, id="object"),
    pytest.param(
        [{"generated_text": "hi", "details": DETAILS}], "hi", "stop", 3, id="list-from-POST-/"
    ),
    pytest.param(
        {"generated_text": "x", "details": {**DETAILS, "finish_reason": "length"}},
        "x",
        "length",
        3,
        id="length",
    ),
    pytest.param(
        {"generated_text": "x", "details": {**DETAILS, "finish_reason": "stop_sequence"}},
        "x",
        "stop",
        3,
        id="stop_sequence",
    ),
    pytest.param(
        {"generated_text": "x", "details": {**DETAILS, "finish_reason": "brand_new"}},
        "x",
        "stop",
        3,
        id="unknown-reason",
    ),
    pytest.param(
        [{"generated_text": "P and more"}], " and more", "stop", None, id="prompt-echo-stripped"
    ),
]


@pytest.mark.parametrize(("body", "text", "finish", "tokens"), RESPONSES)
def test_tgi_parse_response(body: Any, text: str, finish: str, tokens: int | None) -> None:
    generation = TGI().parse_response(json.dumps(body).encode(), prompt="P")
    assert (generation.text, generation.finish_reason, generation.completion_tokens) == (
        text,
        finish,
        tokens,
    )


def test_tgi_token_details_only_when_logprobs_are_asked() -> None:
    token = {"id": 1, "text": "x", "logprob": -0.5, "special": False}
    body = json.dumps(
        {"generated_text": "x", "details": {**DETAILS, "tokens": [token], "top_tokens": [[token]]}}
    ).encode()
    assert TGI().parse_response(body, prompt="P").tokens is None
    [info] = TGI().parse_response(body, prompt="P", logprobs=True).tokens or []
    assert (info.text, info.logprob, info.top) == ("x", -0.5, (("x", -0.5),))


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"generated_text": 3}', b"null"],
    ids=["garbage", "empty-list", "wrong-type", "null"],
)
def test_tgi_garbage_is_invalid_response(body: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        TGI().parse_response(body, prompt="P")
    assert info.value.reason == "invalid_response"
    assert info.value.status_code == 502


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ([{"generated_text": "out"}], "out"),
        ([[{"generated_text": "nested"}]], "nested"),
        ({"generated_text": "obj"}, "obj"),
        ([{"generated_text": "P echoed"}], " echoed"),
    ],
    ids=["list", "nested-list", "object", "echo"],
)
def test_pipeline_parse_response(body: Any, text: str) -> None:
    assert (
        Pipeline(full_text_flag=True).parse_response(json.dumps(body).encode(), prompt="P").text
        == text
    )


EVENTS = [
    pytest.param(
        b'{"index":1,"token":{"id":1,"text":" a","logprob":-0.5,"special":false},"generated_text":null,"details":null}',
        " a",
        None,
        id="token",
    ),
    pytest.param(
        b'{"index":2,"token":{"id":2,"text":"</s>","logprob":-0.1,"special":true},"generated_text":" a",'
        b'"details":{"finish_reason":"eos_token","generated_tokens":2,"seed":null,"input_length":5}}',
        "",
        "stop",
        id="special-eos-final",
    ),
    pytest.param(
        b'{"token":{"id":1,"text":"z","logprob":-1,"special":false},"generated_text":"z","details":{"finish_reason":"length","generated_tokens":1}}',
        "z",
        "length",
        id="final-length",
    ),
    pytest.param(
        b'{"token":{"id":1,"text":"q","special":false},"generated_text":"q","details":null}',
        "q",
        "stop",
        id="final-without-details",
    ),
]


@pytest.mark.parametrize(("data", "text", "finish"), EVENTS)
def test_tgi_parse_event(data: bytes, text: str, finish: str | None) -> None:
    delta = TGI().parse_event(data)
    assert (delta.text, delta.finish_reason) == (text, finish)


def test_tgi_final_event_carries_token_counts() -> None:
    delta = TGI().parse_event(EVENTS[1].values[0])  # type: ignore[arg-type]
    assert (delta.prompt_tokens, delta.completion_tokens) == (5, 2)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (
            b'{"error":"Request failed during generation: CUDA OOM","error_type":"generation"}',
            UpstreamError,
        ),
        (
            b'{"error":"Input validation error: too long","error_type":"validation"}',
            UpstreamRejectedError,
        ),
        (
            b'{"error":"Incomplete generation","error_type":"incomplete_generation_stream"}',
            UpstreamError,
        ),
    ],
    ids=["generation", "validation", "incomplete"],
)
def test_tgi_error_events_raise(data: bytes, kind: type[Exception]) -> None:
    with pytest.raises(kind) as info:
        TGI().parse_event(data)
    assert type(info.value) is kind
