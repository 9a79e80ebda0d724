"""The Responses API (``/v1/responses``) with the official openai Python SDK.

Every assertion is on what the SDK returns, raises or streams. Event order follows OpenAI's
contract (openai-python ``types/responses``: ``ResponseStreamEvent``): ``response.created``,
``response.in_progress``, then per output item ``output_item.added`` … ``output_item.done``, then
``response.completed``; the stored state lives in the stack's SQLite file (the default backend).
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.clients.responses_sdk import (
    TEXT_EVENTS,
    assert_sequenced,
    client,
    collapsed,
    function_call_streamed,
    function_tool_round_trip,
    prompt,
)
from tests.clients.stack import ANSWER, CHAT_MODELS, GOOD_KEY, TGI_ONLY_KEY, Stack, bounded
from tests.fake_hf import Reply
from tests.fake_model import ToolModel

pytestmark = pytest.mark.asyncio(loop_scope="module")
PLAIN_MODELS = {k: CHAT_MODELS[k] for k in ("tgi", "pipeline", "openai")}

# --- plain text ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", PLAIN_MODELS.values(), ids=PLAIN_MODELS.keys())
@bounded()
async def test_create(stack: Stack, model: str) -> None:
    async with client(stack) as c:
        response = await c.responses.create(
            model=model, input="Say hello.", instructions="You are terse."
        )
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == model
    assert response.output_text == ANSWER
    assert response.instructions == "You are terse."
    [item] = response.output
    assert item.type == "message"
    assert item.role == "assistant"
    assert [part.type for part in item.content] == ["output_text"]
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    # The instructions reached the model as the system turn, before the input.
    asked = prompt(stack, model)
    assert asked.index("You are terse.") < asked.index("Say hello.")


@pytest.mark.parametrize("model", PLAIN_MODELS.values(), ids=PLAIN_MODELS.keys())
@bounded()
async def test_create_streamed(stack: Stack, model: str) -> None:
    async with client(stack) as c:
        stream = await c.responses.create(model=model, input="Say hello.", stream=True)
        events = [event async for event in stream]
    assert collapsed(events) == TEXT_EVENTS
    assert_sequenced(events)
    created, in_progress, *_, completed = events
    assert created.response.status == "in_progress"
    assert created.response.id == in_progress.response.id == completed.response.id
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert "".join(e.delta for e in deltas) == ANSWER
    item_id = events[2].item.id
    assert {e.item_id for e in deltas} == {item_id}
    assert {(e.output_index, e.content_index) for e in deltas} == {(0, 0)}
    [done] = [e for e in events if e.type == "response.output_text.done"]
    assert done.text == ANSWER
    assert completed.response.status == "completed"
    assert completed.response.output_text == ANSWER
    assert completed.response.usage is not None


@bounded()
async def test_stream_helper(stack: Stack) -> None:
    async with (
        client(stack) as c,
        c.responses.stream(model="tgi", input="Say hello.") as stream,
    ):
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == ANSWER
    assert final.output_text == ANSWER
    assert final.status == "completed"


@bounded()
async def test_max_output_tokens_cut_is_incomplete(stack: Stack) -> None:
    details = {"finish_reason": "length", "generated_tokens": 5, "seed": None}
    stack.fake.script("/tgi/generate", Reply(json={"generated_text": "Hello", "details": details}))
    async with client(stack) as c:
        response = await c.responses.create(model="tgi", input="Count.", max_output_tokens=5)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.max_output_tokens == 5
    assert response.output_text == "Hello"
    assert stack.fake.requests("/tgi/generate")[0].json()["parameters"]["max_new_tokens"] == 5


# --- state: previous_response_id, retrieve, delete, input items ---------------------------------


@bounded()
async def test_previous_response_id_chain_of_three(stack: Stack) -> None:
    stack.fake.script(
        "/tgi/generate", *(Reply(json={"generated_text": t}) for t in ("One.", "Two.", "Three."))
    )
    async with client(stack) as c:
        first = await c.responses.create(model="tgi", input="Say one.")
        second = await c.responses.create(
            model="tgi", input="Say two.", previous_response_id=first.id
        )
        third = await c.responses.create(
            model="tgi", input="Say three.", previous_response_id=second.id
        )
    assert [r.output_text for r in (first, second, third)] == ["One.", "Two.", "Three."]
    assert third.previous_response_id == second.id
    # The third prompt holds the whole conversation, in order, each answer as an assistant turn.
    asked = prompt(stack, "tgi", 2)
    turns = ["Say one.", "One.", "Say two.", "Two.", "Say three."]
    positions = [asked.index(t) for t in turns]
    assert positions == sorted(positions), asked
    assert "<|im_start|>assistant\nOne.<|im_end|>" in asked


@pytest.mark.parametrize("model", PLAIN_MODELS.values(), ids=PLAIN_MODELS.keys())
@bounded()
async def test_item_reference_sends_the_stored_item(stack: Stack, model: str) -> None:
    # The whole conversation resent, the earlier answer by reference (as the Vercel AI SDK
    # does with store on): the model sees the answer, the input items hold it under its id.
    async with client(stack) as c:
        first = await c.responses.create(model=model, input="Say hello.")
        second = await c.responses.create(
            model=model,
            input=[
                {"role": "user", "content": "Say hello."},
                {"type": "item_reference", "id": first.output[0].id},
                {"role": "user", "content": "Once more."},
            ],
        )
        items = await c.responses.input_items.list(second.id, order="asc")
        with pytest.raises(openai.BadRequestError) as unknown:
            await c.responses.create(
                model=model, input=[{"type": "item_reference", "id": f"msg_{'0' * 32}_0"}]
            )
    assert second.output_text == ANSWER
    asked = prompt(stack, model, 1)
    assert asked.index("Say hello.") < asked.index(ANSWER) < asked.index("Once more.")
    assert [i.type for i in items.data] == ["message"] * 3
    assert items.data[1].id == first.output[0].id
    assert items.data[1].role == "assistant"
    assert unknown.value.param == "input[0].id"


@bounded()
async def test_retrieve_and_delete(stack: Stack) -> None:
    async with client(stack) as c:
        created = await c.responses.create(
            model="tgi", input="Say hello.", metadata={"ticket": "T-1"}
        )
        got = await c.responses.retrieve(created.id)
        await c.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError) as gone:
            await c.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            await c.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await c.responses.retrieve("resp_does_not_exist")
    assert got.id == created.id
    assert got.output_text == ANSWER
    assert got.status == "completed"
    assert got.metadata == {"ticket": "T-1"}
    assert got.created_at == created.created_at
    assert gone.value.status_code == 404


@bounded()
async def test_store_false_is_not_kept(stack: Stack) -> None:
    async with client(stack) as c:
        response = await c.responses.create(model="tgi", input="Say hello.", store=False)
        with pytest.raises(openai.NotFoundError):
            await c.responses.retrieve(response.id)
    assert response.output_text == ANSWER


@bounded()
async def test_input_items(stack: Stack) -> None:
    texts = ["First.", "Second.", "Third."]
    async with client(stack) as c:
        response = await c.responses.create(
            model="tgi",
            input=[{"role": "user", "content": t} for t in texts],
            instructions="Not an input item.",
        )
        newest_first = await c.responses.input_items.list(response.id)
        oldest_first = [
            i async for i in c.responses.input_items.list(response.id, order="asc", limit=2)
        ]
        page = await c.responses.input_items.list(response.id, order="asc", limit=2)

    def text(item: Any) -> str:
        assert item.type == "message"
        return "".join(part.text for part in item.content)

    assert [text(i) for i in newest_first.data] == texts[::-1]
    # Auto-pagination over pages of two (the SDK follows `after` while `has_more`).
    assert [text(i) for i in oldest_first] == texts
    assert page.has_more is True
    assert [text(i) for i in page.data] == texts[:2]
    assert all(i.id for i in oldest_first)


@bounded()
async def test_responses_belong_to_their_key(keyed: Stack) -> None:
    async with client(keyed, TGI_ONLY_KEY) as owner, client(keyed, GOOD_KEY) as other:
        response = await owner.responses.create(model="tgi", input="Say hello.")
        mine = await owner.responses.retrieve(response.id)
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(response.id)
        # Chaining on another key's response is the unknown-id 400 (nothing tells them apart).
        with pytest.raises(openai.BadRequestError) as chained:
            await other.responses.create(
                model="tgi", input="Go on.", previous_response_id=response.id
            )
    assert mine.id == response.id
    assert chained.value.param == "previous_response_id"


# --- function tools (on rendered protocols: test_responses_tools) ---------------------------------


@bounded()
async def test_function_tool_round_trip_on_openai(stack: Stack) -> None:
    await function_tool_round_trip(stack, "vllm")


@bounded()
async def test_function_call_streamed_on_openai(stack: Stack) -> None:
    await function_call_streamed(stack, "vllm")


# --- text.format ------------------------------------------------------------------------------


class Weather(BaseModel):
    city: str
    temperature_c: int


@bounded()
async def test_text_format_json_schema_on_tgi(stack: Stack) -> None:
    stack.fake.model = ToolModel(json={"city": "Paris", "temperature_c": 21})
    schema = Weather.model_json_schema() | {"additionalProperties": False}
    async with client(stack) as c:
        response = await c.responses.create(
            model="tgi",
            input="The weather in Paris?",
            text={
                "format": {
                    "type": "json_schema",
                    "name": "weather",
                    "schema": schema,
                    "strict": True,
                }
            },
        )
        parsed = await c.responses.parse(model="tgi", input="The weather?", text_format=Weather)
    assert json.loads(response.output_text) == {"city": "Paris", "temperature_c": 21}
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"
    assert parsed.output_parsed == Weather(city="Paris", temperature_c=21)
    grammar = stack.fake.requests("/tgi/generate")[0].json()["parameters"]["grammar"]
    assert grammar["type"] == "json"
    assert set(grammar["value"]["properties"]) == {"city", "temperature_c"}


# --- errors: the SDK's typed exceptions -------------------------------------------------------


@bounded()
async def test_errors(stack: Stack) -> None:
    async with client(stack) as c:
        with pytest.raises(openai.NotFoundError) as missing:
            await c.responses.create(model="gpt-99", input="hi")
        with pytest.raises(openai.BadRequestError) as hosted:
            await c.responses.create(model="tgi", input="hi", tools=[{"type": "web_search"}])
        with pytest.raises(openai.BadRequestError) as no_previous:
            await c.responses.create(model="tgi", input="hi", previous_response_id="resp_nope")
    assert missing.value.code == "model_not_found"
    assert missing.value.param == "model"
    assert hosted.value.param == "tools[0].type"
    assert "web_search" in hosted.value.message
    assert no_previous.value.status_code == 400
    assert no_previous.value.param == "previous_response_id"
    assert stack.upstream_calls("/tgi/generate") == 0
