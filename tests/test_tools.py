"""Tool calling and reasoning end to end through the app, on the fake upstream: tgi and
pipeline × whole and streamed × auto / required / named / none / legacy; the mistral and
llama3_json formats with TGI's special marker tokens; reasoning; legacy functions on an
OpenAI upstream. The fake's ``ToolModel`` checks that TGI's grammar is a JSON Schema that
accepts its answer (else a 422), so a forced call that comes back proves the grammar.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from shim.adapters.text_generation import TGI
from tests.conftest import FAKE, MODELS, app_client, make_config
from tests.fake_hf import FakeHF, Reply, sse, tgi_stream_events
from tests.fake_model import ToolModel

EXTRA = f"""
[models.pipe-chatml]
task = "text-generation"
url = "{FAKE}/pipe-chatml"
protocol = "pipeline"
chat_template = "chatml"
retries = 0

[models.mistral]
task = "text-generation"
url = "{FAKE}/mistral"
chat_template = "mistral"
retries = 0

[models.llama]
task = "text-generation"
url = "{FAKE}/llama"
chat_template = "llama-3"
retries = 0

[models.think]
task = "text-generation"
url = "{FAKE}/think"
chat_template = "chatml"
reasoning_parser = "think"
retries = 0
"""
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
PARIS = {"city": "Paris"}
#: How each choice is asked, and the call expected back (None: text).
CHOICES: dict[str, tuple[dict[str, Any], str | None]] = {
    "auto": ({"tools": [WEATHER, TIME]}, "get_weather"),
    "required": ({"tools": [WEATHER, TIME], "tool_choice": "required"}, "get_weather"),
    "named": (
        {
            "tools": [WEATHER, TIME],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        },
        "get_time",
    ),
    "none": ({"tools": [WEATHER, TIME], "tool_choice": "none"}, None),
    "legacy": ({"functions": [WEATHER["function"]], "function_call": "auto"}, "get_weather"),
}
FORCED = ("required", "named")
MODELS_BY_PROTOCOL = {"tgi": "tgi", "pipeline": "pipe-chatml"}
MARKUP = ("<tool_call>", "</tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "<think>", "</think>")


async def _client(fake: FakeHF) -> Any:
    return app_client(fake, make_config(MODELS + EXTRA))


def events(body: bytes) -> list[dict[str, Any]]:
    blocks = body.decode().split("\n\n")
    return [
        json.loads(b.removeprefix("data: "))
        for b in blocks
        if b.startswith("data: ") and b != "data: [DONE]"
    ]


def assemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A streamed answer added up as a client would: content, reasoning, calls, finish."""
    content, reasoning, calls, legacy, finish = "", "", {}, None, None
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            finish = choice["finish_reason"] or finish
            for part in delta.get("tool_calls") or []:
                if "id" in part:  # the first delta of a call: id, type, name, ""
                    assert part["type"] == "function" and part["function"]["arguments"] == ""
                    calls[part["index"]] = {"id": part["id"], **part["function"]}
                else:
                    assert "name" not in part["function"]
                    calls[part["index"]]["arguments"] += part["function"]["arguments"]
            if "function_call" in delta:
                legacy = legacy or {"name": "", "arguments": ""}
                legacy["name"] += delta["function_call"].get("name") or ""
                legacy["arguments"] += delta["function_call"]["arguments"]
    return {"content": content, "reasoning": reasoning, "calls": list(calls.values()),
            "function_call": legacy, "finish": finish}  # fmt: skip


def whole(answer: dict[str, Any]) -> dict[str, Any]:
    [choice] = answer["choices"]
    message = choice["message"]
    assert "tool_calls" not in message or message["tool_calls"], "never an empty list"
    return {
        "content": message["content"] or "",
        "reasoning": message.get("reasoning_content", ""),
        "calls": [{"id": c["id"], **c["function"]} for c in message.get("tool_calls", [])],
        "function_call": message.get("function_call"),
        "finish": choice["finish_reason"],
        "null_content": message["content"] is None,
    }


async def ask(
    client: AsyncTestClient[Litestar], model: str, *, stream: bool, **fields: Any
) -> tuple[int, bytes]:
    body = {"model": model, "messages": ASK, "stream": stream, **fields}
    response = await client.post("/v1/chat/completions", json=body)
    return response.status_code, response.content


def read(raw: bytes, *, stream: bool) -> dict[str, Any]:
    for marker in MARKUP:
        assert marker not in raw.decode(), f"markup {marker} leaked"
    return assemble(events(raw)) if stream else whole(json.loads(raw))


@pytest.mark.parametrize("choice", CHOICES, ids=CHOICES.keys())
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("protocol", MODELS_BY_PROTOCOL, ids=MODELS_BY_PROTOCOL.keys())
async def test_tool_choice_table(fake: FakeHF, protocol: str, stream: bool, choice: str) -> None:
    fake.model = ToolModel(arguments={"get_weather": PARIS, "get_time": {}}, text="No tool.")
    fields, called = CHOICES[choice]
    model = MODELS_BY_PROTOCOL[protocol]
    async with await _client(fake) as client:
        status, raw = await ask(client, model, stream=stream, **fields)
    if protocol == "pipeline" and choice in FORCED:
        assert status == 400
        assert json.loads(raw)["error"]["param"] == "tool_choice"
        assert not fake.requests("/pipe-chatml")
        return
    assert status == 200, raw
    got = read(raw, stream=stream)
    if choice in FORCED:
        [sent] = [s.json() for s in fake.seen]
        grammar = sent["parameters"]["grammar"]
        assert grammar["type"] == "json" and "anyOf" in grammar["value"]
    if called is None:
        assert (got["content"], got["calls"], got["finish"]) == ("No tool.", [], "stop")
        assert "<tools>" not in fake.seen[0].json()["inputs"]
        return
    args = PARIS if called == "get_weather" else {}
    if choice == "legacy":
        assert got["calls"] == []
        call = got["function_call"]
        assert (call["name"], json.loads(call["arguments"])) == (called, args)
        assert got["finish"] == "function_call"
        return
    [call] = got["calls"]
    assert (call["name"], json.loads(call["arguments"])) == (called, args)
    assert call["id"].startswith("call_") and len(call["id"]) > 10
    assert (got["content"], got["finish"]) == ("", "tool_calls")
    if not stream:
        assert got["null_content"]


async def test_parallel_calls_get_distinct_ids(fake: FakeHF) -> None:
    fake.model = ToolModel(arguments={"get_weather": PARIS, "get_time": {}}, parallel=True)
    async with await _client(fake) as client:
        _, raw = await ask(client, "tgi", stream=False, tools=[WEATHER, TIME])
        _, off = await ask(client, "tgi", stream=False, tools=[WEATHER, TIME],
                           parallel_tool_calls=False)  # fmt: skip
    calls = read(raw, stream=False)["calls"]
    assert [c["name"] for c in calls] == ["get_weather", "get_time"]
    assert len({c["id"] for c in calls}) == 2
    assert [c["name"] for c in read(off, stream=False)["calls"]] == ["get_weather"]


async def test_forced_choice_and_response_format_is_a_400(fake: FakeHF) -> None:
    async with await _client(fake) as client:
        status, raw = await ask(
            client, "tgi", stream=False, tools=[WEATHER], tool_choice="required",
            response_format={"type": "json_object"},
        )  # fmt: skip
    assert status == 400
    assert json.loads(raw)["error"]["param"] == "response_format"
    assert not fake.seen


async def test_response_format_on_tgi_still_uses_a_grammar(fake: FakeHF) -> None:
    fake.model = ToolModel(json={"city": "Paris"})
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}
    async with await _client(fake) as client:
        status, raw = await ask(client, "tgi", stream=False, response_format=fmt)
    assert status == 200
    assert json.loads(read(raw, stream=False)["content"]) == {"city": "Paris"}
    assert fake.seen[0].json()["parameters"]["grammar"] == {"type": "json", "value": schema}


def _special_stream(tokens: list[tuple[str, bool]]) -> Reply:
    events = tgi_stream_events([t for t, _ in tokens])
    for event, (_, special) in zip(events, tokens, strict=False):  # the last event: details
        event["token"]["special"] = special
    return Reply(chunks=sse(*events, space=False))


def _special_whole(tokens: list[tuple[str, bool]]) -> Reply:
    details = {
        "finish_reason": "eos_token",
        "generated_tokens": len(tokens),
        "tokens": [{"id": i, "text": t, "logprob": -0.5, "special": s}
                   for i, (t, s) in enumerate(tokens)],
    }  # fmt: skip
    text = "".join(t for t, special in tokens if not special)  # as TGI decodes it
    return Reply(json={"generated_text": text, "details": details})


SPECIAL = {
    # Mistral v0.3: [TOOL_CALLS] is a special token TGI marks (and leaves out of the text).
    "mistral": [("[TOOL_CALLS]", True), ('[{"name": "get_weather", ', False),
                ('"arguments": {"city": "Paris"}}]', False), ("</s>", True)],
    # Llama 3.1: <|python_tag|> starts a call; <|eom_id|> (not a marker) is never kept.
    "llama": [("<|python_tag|>", True), ('{"name": "get_weather", ', False),
              ('"parameters": {"city": "Paris"}}', False), ("<|eom_id|>", True)],
}  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", SPECIAL, ids=SPECIAL.keys())
async def test_special_marker_tokens_reach_the_parser(
    fake: FakeHF, model: str, stream: bool
) -> None:
    tokens = SPECIAL[model]
    path = f"/{model}/generate_stream" if stream else f"/{model}/generate"
    fake.script(path, _special_stream(tokens) if stream else _special_whole(tokens))
    async with await _client(fake) as client:
        status, raw = await ask(client, model, stream=stream, tools=[WEATHER])
    assert status == 200, raw
    assert "<|eom_id|>" not in raw.decode() and "</s>" not in raw.decode()
    got = read(raw, stream=stream)
    [call] = got["calls"]
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", PARIS)
    assert (got["content"], got["finish"]) == ("", "tool_calls")


def test_special_tokens_without_tools_stay_out() -> None:
    # Without tools nothing is parsed, so no marker is kept: TGI's text as it decoded it.
    event = tgi_stream_events(["[TOOL_CALLS]"])[0]
    event["token"]["special"] = True
    data = json.dumps(event).encode()
    assert TGI().parse_event(data).text == ""
    assert TGI().parse_event(data, markers=frozenset({"[TOOL_CALLS]"})).text == "[TOOL_CALLS]"


THINKING = ["<thi", "nk>", "Paris is", " in France.", "</th", "ink>", "\n\n", "It is ", "sunny."]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_reasoning_content(fake: FakeHF, stream: bool) -> None:
    if stream:
        fake.script("/think/generate_stream", Reply(chunks=sse(*tgi_stream_events(THINKING), space=False)))  # fmt: skip
    else:
        fake.tokens = THINKING
    async with await _client(fake) as client:
        status, raw = await ask(client, "think", stream=stream)
    assert status == 200
    got = read(raw, stream=stream)
    assert (got["reasoning"], got["content"], got["finish"]) == (
        "Paris is in France.", "It is sunny.", "stop",
    )  # fmt: skip


async def test_plain_text_without_tools_has_no_tool_fields(fake: FakeHF) -> None:
    async with await _client(fake) as client:
        _, raw = await ask(client, "tgi", stream=False)
        _, streamed = await ask(client, "tgi", stream=True)
    message = json.loads(raw)["choices"][0]["message"]
    assert set(message) == {"role", "content", "refusal"}
    for chunk in events(streamed):
        for choice in chunk["choices"]:
            assert set(choice["delta"]) <= {"role", "content"}


# --- legacy functions on an OpenAI-speaking upstream: sent as tools, answered as functions ----


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_legacy_functions_on_an_openai_upstream(fake: FakeHF, stream: bool) -> None:
    fake.model = ToolModel(arguments={"get_weather": PARIS})
    history = [
        *ASK,
        {"role": "assistant", "content": None,
         "function_call": {"name": "get_weather", "arguments": '{"city": "Lyon"}'}},
        {"role": "function", "name": "get_weather", "content": "rain"},
        {"role": "user", "content": "And in Paris?"},
    ]  # fmt: skip
    async with await _client(fake) as client:
        body = {"model": "vllm", "messages": history, "stream": stream,
                "functions": [WEATHER["function"]], "function_call": {"name": "get_weather"}}  # fmt: skip
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.content
    got = read(response.content, stream=stream)
    call = got["function_call"]
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", PARIS)
    assert (got["calls"], got["finish"]) == ([], "function_call")
    sent = fake.requests("/vllm/v1/chat/completions")[0].json()
    assert "functions" not in sent and "function_call" not in sent
    assert sent["tools"] == [WEATHER]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    call_id = sent["messages"][1]["tool_calls"][0]["id"]
    assert sent["messages"][2] == {"role": "tool", "content": "rain", "tool_call_id": call_id}
