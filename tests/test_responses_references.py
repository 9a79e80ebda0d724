"""``item_reference`` input items (openai-python ``ResponseInputItemParam.ItemReference``): an
earlier item by id, read from the stored response its id names, with the owner rule, one store
read per response named.

In process (the fake upstream as a MockTransport), and once against a real ``redis-server`` to
count the store's reads.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from tests.conftest import MODELS, app_client, make_config
from tests.fake_hf import FakeHF, Reply
from tests.redis_server import redis_server
from tests.test_responses_api import KEYS, WEATHER, A, B, _vllm_call_chunks

ASSISTANT_TURN = "<|im_start|>assistant\nOne.<|im_end|>"


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def _first(client: Any, **headers: str) -> dict[str, Any]:
    reply = await client.post(
        "/v1/responses", json={"model": "tgi", "input": "Say one."}, headers=headers
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


@pytest.mark.parametrize(
    ("reference", "target"),
    [
        ({"type": "item_reference"}, "output"),
        ({}, "output"),
        ({"type": None}, "output"),
        ({"type": "item_reference"}, "input"),
    ],
    ids=["output-message", "type-omitted", "type-null", "input-message"],
)
async def test_a_reference_is_the_stored_item_in_its_place(
    fake: FakeHF, reference: dict[str, Any], target: str
) -> None:
    fake.script("/tgi/generate", *(Reply(json={"generated_text": t}) for t in ("One.", "Two.")))
    async with app_client(fake) as client:
        first = await _first(client)
        items = await client.get(f"/v1/responses/{first['id']}/input_items")
        [item] = first["output"] if target == "output" else items.json()["data"]
        second = await client.post(
            "/v1/responses",
            json={
                "model": "tgi",
                "input": [_user("Say one."), {**reference, "id": item["id"]}, _user("Say two.")],
            },
        )
        listed = await client.get(
            f"/v1/responses/{second.json()['id']}/input_items", params={"order": "asc"}
        )
    assert second.status_code == 200, second.text
    prompt = fake.requests("/tgi/generate")[1].json()["inputs"]
    if target == "output":
        assert ASSISTANT_TURN in prompt
        assert prompt.index("Say one.") < prompt.index("One.<") < prompt.index("Say two.")
        roles = ["user", "assistant", "user"]
    else:
        assert prompt.count("Say one.") == 2
        roles = ["user", "user", "user"]
    # Stored as the item itself, under its own id.
    data = listed.json()["data"]
    assert [i["role"] for i in data] == roles
    assert data[1] == item


async def test_function_call_and_reasoning_references_on_an_openai_upstream(fake: FakeHF) -> None:
    # What the AI SDK sends after a tool call with store on: references to the reasoning item
    # and the call, then the tool's output.
    fake.script("/vllm/v1/chat/completions", Reply(chunks=_vllm_call_chunks()))
    async with app_client(fake) as client:
        reply = await client.post(
            "/v1/responses",
            json={"model": "vllm", "input": "Weather?", "tools": [WEATHER], "stream": True},
        )
        last = reply.text.strip().rsplit("\n\n", 1)[-1]
        rid = last.split('"id":"', 1)[1].split('"', 1)[0]
        reasoning_id, call_id = f"rs_{rid[5:]}_0", f"fc_{rid[5:]}_1"
        second = await client.post(
            "/v1/responses",
            json={
                "model": "vllm",
                "tools": [WEATHER],
                "input": [
                    _user("Weather?"),
                    {"type": "item_reference", "id": reasoning_id},
                    {"type": "item_reference", "id": call_id},
                    {
                        "type": "function_call_output",
                        "call_id": f"call_{rid[5:]}_1",
                        "output": "18 C",
                    },
                ],
            },
        )
    assert second.status_code == 200, second.text
    messages = fake.requests("/vllm/v1/chat/completions")[1].json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    [call] = messages[1]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert call["id"] == messages[2]["tool_call_id"]


@pytest.mark.parametrize(
    ("make", "headers"),
    [
        (lambda rid: {"type": "item_reference", "id": f"msg_{rid[5:]}_0"}, B),
        (lambda rid: {"type": "item_reference", "id": f"msg_{rid[5:]}_7"}, A),
        (lambda rid: {"type": "item_reference", "id": "msg_not-ours"}, A),
        (lambda rid: {"type": "item_reference", "id": f"msg_{'0' * 32}_0"}, A),
        (lambda rid: {"type": "item_reference"}, A),
    ],
    ids=["another-keys", "no-such-item", "not-an-id-shim-made", "unknown-response", "no-id"],
)
async def test_a_reference_to_nothing_the_caller_may_read_is_a_400(
    fake: FakeHF, make: Any, headers: dict[str, str]
) -> None:
    async with app_client(fake, make_config(server=KEYS)) as client:
        first = await _first(client, **A)
        reply = await client.post(
            "/v1/responses",
            json={"model": "tgi", "input": [_user("Again."), make(first["id"])]},
            headers=headers,
        )
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == "input[1].id"
    assert len(fake.requests()) == 1  # the first response's only


async def test_a_deleted_responses_items_cannot_be_referenced(fake: FakeHF) -> None:
    async with app_client(fake) as client:
        first = await _first(client)
        await client.delete(f"/v1/responses/{first['id']}")
        reply = await client.post(
            "/v1/responses",
            json={"model": "tgi", "input": [{"id": first["output"][0]["id"]}, _user("Again.")]},
        )
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "input[0].id"
    assert "not found" in reply.json()["error"]["message"]


REDIS_STATE = '\n[state]\nbackend = "redis"\nurl = "{url}"\nkey_prefix = "refs:"\n'


async def test_one_store_read_per_response_named(fake: FakeHF) -> None:
    fake.script(
        "/tgi/generate", *(Reply(json={"generated_text": t}) for t in ("One.", "Two.", "Three."))
    )
    with redis_server() as url:
        config = make_config(MODELS + REDIS_STATE.format(url=url))
        server = redis.Redis.from_url(url)
        async with app_client(fake, config) as client:
            first = await _first(client)
            second = (
                await client.post(
                    "/v1/responses",
                    json={"model": "tgi", "input": "Say two.", "previous_response_id": first["id"]},
                )
            ).json()
            server.config_resetstat()
            # The previous response (first) is named by two references too, second by two.
            references = [
                first["output"][0]["id"], f"msg_{first['id'][5:]}_i0",
                f"msg_{second['id'][5:]}_i0", second["output"][0]["id"],
            ]  # fmt: skip
            third = await client.post(
                "/v1/responses",
                json={
                    "model": "tgi",
                    "previous_response_id": first["id"],
                    "input": [{"type": "item_reference", "id": i} for i in references],
                },
            )
            stats = server.info("commandstats")
            reads = {c: stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("get", "mget")}
        server.close()
    assert third.status_code == 200, third.text
    # The two records are read concurrently, grouped into one round trip by the store.
    assert reads == {"get": 0, "mget": 1}
    prompt = fake.requests("/tgi/generate")[2].json()["inputs"]
    turns = ["Say one.", "One.", "Say two.", "Two."]
    assert [prompt.index(t) for t in turns] == sorted(prompt.index(t) for t in turns)
