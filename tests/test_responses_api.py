"""``/v1/responses`` served: every protocol, the event stream, the store, ownership, errors.

In process (the fake upstream as a MockTransport); real clients are in ``tests/clients``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import FAKE, app_client, make_config
from tests.conftest import MODELS as BASE_MODELS
from tests.fake_hf import TOKENS, FakeHF, Reply, sse, tgi_stream_events

ANSWER = "".join(TOKENS)
MODELS = {"tgi": "tgi", "pipeline": "pipe", "openai": "vllm"}
KEYS = """
[[server.keys]]
key = "sk-a"
name = "team-a"
[[server.keys]]
key = "sk-b"
name = "team-b"
"""
A, B = {"authorization": "Bearer sk-a"}, {"authorization": "Bearer sk-b"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def events_of(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE event; every event's name equals its data's ``type``."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        out.append((lines["event"], data))
    return out


def collapsed(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    names: list[str] = []
    for name, _ in events:
        if not names or names[-1] != name:
            names.append(name)
    return names


TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
async def test_create_retrieve_delete(fake: FakeHF, model: str) -> None:
    async with app_client(fake) as client:
        created = await client.post(
            "/v1/responses", json={"model": model, "input": "Say hi.", "instructions": "Terse."}
        )
        assert created.status_code == 200, created.text
        body = created.json()
        got = await client.get(f"/v1/responses/{body['id']}")
        deleted = await client.delete(f"/v1/responses/{body['id']}")
        gone = await client.get(f"/v1/responses/{body['id']}")
        again = await client.delete(f"/v1/responses/{body['id']}")
    assert body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == ANSWER
    assert body["usage"]["output_tokens"] > 0
    assert got.json() == body
    assert deleted.json() == {"id": body["id"], "object": "response", "deleted": True}
    assert gone.status_code == again.status_code == 404
    assert gone.json()["error"]["param"] == "response_id"


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
async def test_stream_is_stored_before_its_end(fake: FakeHF, model: str) -> None:
    async with app_client(fake) as client:
        reply = await client.post(
            "/v1/responses", json={"model": model, "input": "Say hi.", "stream": True}
        )
        events = events_of(reply.text)
        final = events[-1][1]["response"]
        got = await client.get(f"/v1/responses/{final['id']}")
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in reply.text
    assert collapsed(events) == TEXT_EVENTS
    numbers = [data["sequence_number"] for _, data in events]
    assert numbers == list(range(len(events)))
    assert "".join(d["delta"] for n, d in events if n == "response.output_text.delta") == ANSWER
    assert got.json() == final
    assert final["usage"]["total_tokens"] > 0


async def test_store_false_keeps_nothing(fake: FakeHF) -> None:
    async with app_client(fake) as client:
        reply = await client.post(
            "/v1/responses", json={"model": "tgi", "input": "hi", "store": False}
        )
        got = await client.get(f"/v1/responses/{reply.json()['id']}")
        chained = await client.post(
            "/v1/responses",
            json={"model": "tgi", "input": "more", "previous_response_id": reply.json()["id"]},
        )
    assert reply.json()["store"] is False
    assert got.status_code == 404
    assert chained.status_code == 400
    assert chained.json()["error"]["param"] == "previous_response_id"


async def test_previous_response_id_sends_the_conversation(fake: FakeHF) -> None:
    fake.script("/tgi/generate", Reply(json={"generated_text": "One."}))
    async with app_client(fake) as client:
        first = await client.post("/v1/responses", json={"model": "tgi", "input": "Say one."})
        second = await client.post(
            "/v1/responses",
            json={"model": "tgi", "input": "Say two.", "previous_response_id": first.json()["id"]},
        )
        items = await client.get(
            f"/v1/responses/{second.json()['id']}/input_items", params={"order": "asc"}
        )
        page = await client.get(
            f"/v1/responses/{second.json()['id']}/input_items", params={"limit": 1}
        )
        bad = await client.get(
            f"/v1/responses/{second.json()['id']}/input_items", params={"order": "up"}
        )
    prompt = fake.requests("/tgi/generate")[1].json()["inputs"]
    assert prompt.index("Say one.") < prompt.index("One.") < prompt.index("Say two.")
    assert second.json()["previous_response_id"] == first.json()["id"]
    assert [i["role"] for i in items.json()["data"]] == ["user", "assistant", "user"]
    assert page.json()["has_more"] is True
    assert page.json()["data"][0]["content"][0]["text"] == "Say two."
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "order"


async def test_responses_belong_to_their_key(fake: FakeHF) -> None:
    async with app_client(fake, make_config(server=KEYS)) as client:
        mine = await client.post("/v1/responses", json={"model": "tgi", "input": "hi"}, headers=A)
        rid = mine.json()["id"]
        theirs = await client.get(f"/v1/responses/{rid}", headers=B)
        items = await client.get(f"/v1/responses/{rid}/input_items", headers=B)
        deleted = await client.delete(f"/v1/responses/{rid}", headers=B)
        continued = await client.post(
            "/v1/responses",
            json={"model": "tgi", "input": "more", "previous_response_id": rid},
            headers=B,
        )
        still = await client.get(f"/v1/responses/{rid}", headers=A)
        anonymous = await client.get(f"/v1/responses/{rid}")
    assert theirs.status_code == items.status_code == deleted.status_code == 404
    assert continued.status_code == 400
    assert continued.json()["error"]["param"] == "previous_response_id"
    assert still.status_code == 200
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"background": True}, "background"),
        ({"previous_response_id": "resp_nope"}, "previous_response_id"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"input": [{"type": "mcp_call"}]}, "input[0].type"),
    ],
    ids=["hosted-tool", "background", "unknown-previous", "max-output-tokens", "item-type"],
)
async def test_refused_before_any_upstream_call(
    fake: FakeHF, body: dict[str, Any], param: str
) -> None:
    async with app_client(fake) as client:
        reply = await client.post("/v1/responses", json={"model": "tgi", "input": "hi", **body})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param
    assert fake.requests() == []


async def test_upstream_error_before_the_first_byte_is_an_http_error(fake: FakeHF) -> None:
    fake.script("/tgi/generate_stream", Reply(500, json={"error": "boom"}))
    async with app_client(fake) as client:
        reply = await client.post(
            "/v1/responses", json={"model": "tgi", "input": "hi", "stream": True}
        )
    assert reply.status_code == 502
    assert reply.json()["error"]["type"] == "server_error"


async def test_a_stream_cut_after_the_first_byte_fails_the_response(fake: FakeHF) -> None:
    events = tgi_stream_events()[:2]  # no final event: the generation never finished
    fake.script("/tgi/generate_stream", Reply(chunks=sse(*events, space=False)))
    async with app_client(fake) as client:
        reply = await client.post(
            "/v1/responses", json={"model": "tgi", "input": "hi", "stream": True}
        )
        final = events_of(reply.text)[-1]
        got = await client.get(f"/v1/responses/{final[1]['response']['id']}")
    assert reply.status_code == 200
    assert final[0] == "response.failed"
    response = final[1]["response"]
    assert response["status"] == "failed"
    assert response["error"]["code"] == "server_error"
    assert response["output"][0]["status"] == "incomplete"
    assert got.json()["status"] == "failed"


def _vllm_call(arguments: str) -> dict[str, Any]:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "chatcmpl-tool-1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": arguments},
            }
        ],
    }
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "served-name",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
    }


def _vllm_call_chunks() -> list[bytes]:
    base = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    start = {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
    return sse(
        delta({"role": "assistant", "reasoning_content": "Need the weather."}),
        delta({"tool_calls": [start]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        delta({}, "tool_calls"),
        {**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6}},
        done=True,
    )


async def test_function_call_round_trip_on_an_openai_upstream(fake: FakeHF) -> None:
    fake.script("/vllm/v1/chat/completions", Reply(json=_vllm_call('{"city": "Paris"}')))
    async with app_client(fake) as client:
        first = (
            await client.post(
                "/v1/responses",
                json={"model": "vllm", "input": "Weather in Paris?", "tools": [WEATHER]},
            )
        ).json()
        [call] = first["output"]
        second = await client.post(
            "/v1/responses",
            json={
                "model": "vllm",
                "previous_response_id": first["id"],
                "input": [
                    {"type": "function_call_output", "call_id": call["call_id"], "output": "18 C"}
                ],
            },
        )
    assert call["type"] == "function_call"
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert second.status_code == 200
    sent = fake.requests("/vllm/v1/chat/completions")
    assert sent[0].json()["tools"][0]["function"]["name"] == "get_weather"
    messages = sent[1].json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == messages[2]["tool_call_id"] == call["call_id"]
    assert messages[2]["content"] == "18 C"


async def test_streamed_function_call_and_reasoning_on_an_openai_upstream(fake: FakeHF) -> None:
    fake.script("/vllm/v1/chat/completions", Reply(chunks=_vllm_call_chunks()))
    async with app_client(fake) as client:
        reply = await client.post(
            "/v1/responses",
            json={"model": "vllm", "input": "Weather?", "tools": [WEATHER], "stream": True},
        )
    events = events_of(reply.text)
    assert collapsed(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1][1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "function_call"]
    assert json.loads(final["output"][1]["arguments"]) == {"city": "Paris"}
    usage = final["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (9, 6, 15)


async def test_metrics_and_fallbacks(fake: FakeHF) -> None:
    fake.script("/tgi/generate", Reply(500, json={"error": "down"}))
    tgi = f'url = "{FAKE}/tgi"\n'
    config = make_config(BASE_MODELS.replace(tgi, tgi + 'fallbacks = ["pipe"]\n'))
    async with app_client(fake, config) as client:
        reply = await client.post("/v1/responses", json={"model": "tgi", "input": "hi"})
        metrics = (await client.get("/metrics")).text
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"][0]["content"][0]["text"] == ANSWER
    assert [seen.path for seen in fake.requests()] == ["/tgi/generate", "/pipe"]
    assert 'shim_requests_total{endpoint="responses",model="tgi",status="200"} 1.0' in metrics
