"""The response object and its event stream, checked with openai-python's own types and
client (served by an ``httpx.MockTransport`` returning what the builders produce)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from shim.adapters._result import (
    Generation,
    Piece,
    ReasoningPiece,
    TextPiece,
    ToolCall,
    ToolCallArguments,
    ToolCallStart,
)
from shim.adapters.response_output import build_response
from shim.adapters.response_stream import ResponseStream
from shim.errors import StateUnavailableError, UpstreamError, UpstreamOverloadedError
from shim.openai import responses as rs

RID = "resp_0123"
CREATED = 1_760_000_000
_events = pydantic.TypeAdapter(ResponseStreamEvent)


def _req(**fields: Any) -> rs.ResponseCreateRequest:
    return msgspec.convert({"model": "llama", "input": "hi", **fields}, rs.ResponseCreateRequest)


def _build(generation: Generation, **fields: Any) -> rs.Response:
    return build_response(generation, request=_req(**fields), response_id=RID, created_at=CREATED)


def _sdk(response: rs.Response) -> Response:
    return Response.model_validate(msgspec.to_builtins(response))


def _gen(text: str = "", finish: str = "stop", **fields: Any) -> Generation:
    return Generation(
        text=text, finish_reason=finish, prompt_tokens=7, completion_tokens=5, **fields
    )


CALLS = [ToolCall("weather", '{"city": "Paris"}'), ToolCall("time", "{}")]

GENERATIONS = {
    "text": _gen("Hello!"),
    "reasoning-and-text": _gen("42", reasoning="Think: 6*7."),
    "tool-calls": _gen("", finish="tool_calls", tool_calls=CALLS),
    "text-then-call": _gen("Checking.", finish="tool_calls", tool_calls=CALLS[:1]),
    "whitespace-then-call": _gen("\n\n", finish="tool_calls", tool_calls=CALLS[:1]),
    "length": _gen("Once upon", finish="length"),
    "empty": _gen(""),
    "only-reasoning-cut": _gen("", finish="length", reasoning="Let me"),
}


@pytest.mark.parametrize(
    ("name", "shape", "text", "status"),
    [
        ("text", ["message"], "Hello!", "completed"),
        ("reasoning-and-text", ["reasoning", "message"], "42", "completed"),
        ("tool-calls", ["function_call", "function_call"], "", "completed"),
        ("text-then-call", ["message", "function_call"], "Checking.", "completed"),
        ("whitespace-then-call", ["function_call"], "", "completed"),
        ("length", ["message"], "Once upon", "incomplete"),
        ("empty", ["message"], "", "completed"),
        ("only-reasoning-cut", ["reasoning", "message"], "", "incomplete"),
    ],
)
def test_build_response(name: str, shape: list[str], text: str, status: str) -> None:
    parsed = _sdk(_build(GENERATIONS[name]))
    assert [item.type for item in parsed.output] == shape
    assert parsed.output_text == text
    assert parsed.status == status
    assert "output_text" not in msgspec.to_builtins(_build(GENERATIONS[name]))


def test_items_ids_and_usage() -> None:
    parsed = _sdk(_build(_gen("Sure.", reasoning="hm", tool_calls=CALLS)))
    reasoning, message, first, second = parsed.output
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert (reasoning.id, reasoning.summary, reasoning.content[0].text) == ("rs_0123_0", [], "hm")
    assert message.type == "message" and message.content[0].type == "output_text"
    assert (message.id, message.role, message.status) == ("msg_0123_1", "assistant", "completed")
    assert message.content[0].annotations == []
    assert first.type == "function_call" and second.type == "function_call"
    assert (first.id, first.call_id, first.name, first.arguments, first.status) == (
        "fc_0123_2", "call_0123_2", "weather", '{"city": "Paris"}', "completed"
    )  # fmt: skip
    assert second.call_id == "call_0123_3"
    assert parsed.usage is not None
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens, parsed.usage.total_tokens) == (
        7, 5, 12
    )  # fmt: skip
    assert parsed.usage.input_tokens_details.cached_tokens == 0
    assert parsed.usage.output_tokens_details.reasoning_tokens == 0


def test_incomplete_details() -> None:
    parsed = _sdk(_build(GENERATIONS["length"]))
    assert parsed.incomplete_details is not None
    assert parsed.incomplete_details.reason == "max_output_tokens"
    assert parsed.output[-1].status == "incomplete"


TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}


@pytest.mark.parametrize(
    ("fields", "echo"),
    [
        ({}, {"instructions": None, "max_output_tokens": None, "metadata": {}, "parallel_tool_calls": True,
              "previous_response_id": None, "temperature": None, "top_p": None, "store": True,
              "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
              "truncation": "disabled", "error": None, "background": False, "object": "response",
              "id": RID, "created_at": CREATED, "model": "llama"}),
        ({"instructions": "Be brief.", "max_output_tokens": 9, "metadata": {"a": "b"},
          "parallel_tool_calls": False, "previous_response_id": "resp_prev", "temperature": 0.5,
          "top_p": 0.9, "store": False, "user": "u-1"},
         {"instructions": "Be brief.", "max_output_tokens": 9, "metadata": {"a": "b"},
          "parallel_tool_calls": False, "previous_response_id": "resp_prev", "temperature": 0.5,
          "top_p": 0.9, "store": False, "user": "u-1"}),
        ({"tools": [TOOL], "tool_choice": {"type": "function", "name": "f"}},
         {"tools": [TOOL], "tool_choice": {"type": "function", "name": "f"}}),
        ({"text": {"format": {"type": "json_schema", "schema": {"type": "object"}}, "verbosity": "low"}},
         {"text": {"format": {"type": "json_schema", "name": "response", "schema": {"type": "object"}},
                   "verbosity": "low"}}),
        ({"reasoning": {"effort": "high"}}, {"reasoning": {"effort": None, "summary": None}}),
    ],
    ids=["defaults", "sampling-and-chain", "tools", "json-schema", "reasoning-not-applied"],
)  # fmt: skip
def test_request_parameters_are_echoed(fields: dict[str, Any], echo: dict[str, Any]) -> None:
    wire = msgspec.to_builtins(_build(_gen("x"), **fields))
    assert {key: wire[key] for key in echo} == echo
    _sdk(_build(_gen("x"), **fields))


# --- the stream -------------------------------------------------------------------------------


def _pieces(generation: Generation, chunk: int = 3) -> list[Piece]:
    """A generation as a parser would stream it: reasoning, text, then each call."""
    pieces: list[Piece] = []
    split = lambda s: [s[i : i + chunk] for i in range(0, len(s), chunk)]  # noqa: E731
    pieces += [ReasoningPiece(p) for p in split(generation.reasoning)]
    pieces += [TextPiece(p) for p in split(generation.text)]
    for i, call in enumerate(generation.tool_calls):
        pieces.append(ToolCallStart(i, call.name))
        pieces += [ToolCallArguments(i, p) for p in split(call.arguments)]
    return pieces


def _stream(generation: Generation, **fields: Any) -> tuple[bytes, ResponseStream]:
    stream = ResponseStream(_req(**fields), response_id=RID, created_at=CREATED)
    data = stream.start() + b"".join(stream.feed(p) for p in _pieces(generation))
    data += stream.finish(
        finish_reason=generation.finish_reason,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
    )
    return data + stream.end(), stream


def _parse(data: bytes) -> list[dict[str, Any]]:
    """SSE events, checking the framing: an ``event:`` line naming the data's type."""
    assert data.endswith(b"\n\n") and b"[DONE]" not in data
    events = []
    for block in data[:-2].split(b"\n\n"):
        name, payload = block.split(b"\n")
        assert name.startswith(b"event: ") and payload.startswith(b"data: ")
        event = msgspec.json.decode(payload[6:])
        assert event["type"] == name[7:].decode()
        events.append(event)
    return events


@pytest.mark.parametrize("name", list(GENERATIONS))
def test_every_event_parses_and_the_end_equals_the_whole(name: str) -> None:
    generation = GENERATIONS[name]
    data, stream = _stream(generation)
    events = _parse(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        assert _events.validate_python(event).type == event["type"]
    final = events[-1]
    assert final["type"] == f"response.{_sdk(_build(generation)).status}"
    assert final["response"] == msgspec.to_builtins(_build(generation))
    assert stream.response == _build(generation)
    for event in events:
        if "item_id" in event:
            item = final["response"]["output"][event["output_index"]]
            assert event["item_id"] == item["id"]


def test_the_event_sequence_of_a_tool_call_answer() -> None:
    data, _ = _stream(_gen("On it.", finish="tool_calls", reasoning="ok", tool_calls=CALLS[:1]))
    events = [
        (e["type"].removeprefix("response."), e.get("output_index"), e.get("content_index"))
        for e in _parse(data)
    ]
    assert events == [
        ("created", None, None),
        ("in_progress", None, None),
        ("output_item.added", 0, None),
        ("content_part.added", 0, 0),
        ("reasoning_text.delta", 0, 0),
        ("reasoning_text.done", 0, 0),
        ("content_part.done", 0, 0),
        ("output_item.done", 0, None),
        ("output_item.added", 1, None),
        ("content_part.added", 1, 0),
        ("output_text.delta", 1, 0),
        ("output_text.delta", 1, 0),
        ("output_text.done", 1, 0),
        ("content_part.done", 1, 0),
        ("output_item.done", 1, None),
        ("output_item.added", 2, None),
        ("function_call_arguments.delta", 2, None),
        ("function_call_arguments.delta", 2, None),
        ("function_call_arguments.delta", 2, None),
        ("function_call_arguments.delta", 2, None),
        ("function_call_arguments.delta", 2, None),
        ("function_call_arguments.delta", 2, None),
        ("function_call_arguments.done", 2, None),
        ("output_item.done", 2, None),
        ("completed", None, None),
    ]


def test_items_are_in_progress_when_added_and_final_when_done() -> None:
    events = _parse(_stream(_gen("Hi", tool_calls=CALLS[:1], finish="tool_calls"))[0])
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["status"] for i in added] == ["in_progress", "in_progress"]
    assert added[0]["content"] == [] and added[1]["arguments"] == ""
    assert [i["status"] for i in done] == ["completed", "completed"]
    assert done[0]["content"][0]["text"] == "Hi" and done[1]["arguments"] == CALLS[0].arguments
    created = events[0]["response"]
    assert (created["status"], created["output"], created["usage"]) == ("in_progress", [], None)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UpstreamError("The connection to the upstream broke.", reason="stream_aborted"), "server_error"),
        (UpstreamOverloadedError("The upstream is overloaded."), "rate_limit_exceeded"),
    ],
    ids=["broken", "overloaded"],
)  # fmt: skip
def test_a_failure_after_the_first_byte(error: UpstreamError, code: str) -> None:
    stream = ResponseStream(_req(), response_id=RID, created_at=CREATED)
    data = stream.start() + stream.feed(TextPiece("Half an ans")) + stream.fail(error)
    final = _parse(data)[-1]
    parsed = _events.validate_python(final)
    assert parsed.type == "response.failed"
    assert parsed.response.error is not None
    assert (parsed.response.error.code, parsed.response.error.message) == (code, error.message)
    assert parsed.response.output_text == "Half an ans"
    assert parsed.response.output[0].status == "incomplete"


def test_a_finished_stream_may_still_fail_instead_of_ending() -> None:
    # The response could not be stored: response.failed in place of response.completed.
    generation = _gen("Whole answer.", tool_calls=CALLS[:1], finish="tool_calls")
    stream = ResponseStream(_req(), response_id=RID, created_at=CREATED)
    data = stream.start() + b"".join(stream.feed(p) for p in _pieces(generation))
    data += stream.finish(finish_reason="tool_calls", prompt_tokens=5, completion_tokens=7)
    data += stream.fail(StateUnavailableError("The response was not stored."))
    events = _parse(data)
    assert stream.end() == b""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[-2:]] == ["response.output_item.done", "response.failed"]
    failed = _events.validate_python(events[-1])
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    assert failed.response.error.code == "server_error"
    assert [item.status for item in failed.response.output] == ["completed", "completed"]
    assert failed.response.output_text == "Whole answer."
    assert failed.response.usage is not None and failed.response.usage.total_tokens == 12


def test_arguments_of_a_call_that_is_not_open_are_a_bug() -> None:
    stream = ResponseStream(_req(), response_id=RID, created_at=CREATED)
    stream.start()
    stream.feed(ToolCallStart(0, "f"))
    stream.feed(TextPiece("then text"))
    with pytest.raises(ValueError, match="tool call 0"):
        stream.feed(ToolCallArguments(0, "{}"))


# --- the real client --------------------------------------------------------------------------


def _client(reply: Callable[[httpx.Request], httpx.Response]) -> openai.OpenAI:
    http = httpx.Client(transport=httpx.MockTransport(reply))
    return openai.OpenAI(base_url="http://shim.test/v1", api_key="x", http_client=http)


def _sse(body: bytes) -> Callable[[httpx.Request], httpx.Response]:
    headers = {"content-type": "text/event-stream"}
    return lambda request: httpx.Response(200, content=body, headers=headers)


def test_openai_python_streams_a_tool_call_answer() -> None:
    generation = _gen(
        "Let me check.", finish="tool_calls", reasoning="user wants weather", tool_calls=CALLS
    )
    data, _ = _stream(generation)
    with (
        _client(_sse(data)) as client,
        client.responses.stream(model="llama", input="hi") as stream,
    ):
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Let me check."
    calls = [(i.name, i.arguments) for i in final.output if i.type == "function_call"]
    assert calls == [(c.name, c.arguments) for c in CALLS]


def test_openai_python_reads_a_response() -> None:
    body = msgspec.json.encode(_build(_gen("Hello!")))
    reply: Callable[[httpx.Request], httpx.Response] = lambda request: httpx.Response(  # noqa: E731
        200, content=body, headers={"content-type": "application/json"}
    )
    with _client(reply) as client:
        response = client.responses.create(model="llama", input="hi")
    assert (response.id, response.output_text, response.status) == (RID, "Hello!", "completed")
