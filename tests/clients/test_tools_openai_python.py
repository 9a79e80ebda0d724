"""Tool calling with the official openai Python SDK, on rendered protocols and an OpenAI upstream.

The upstream is ``FakeHF`` with a ``ToolModel``: on ``tgi`` and ``pipe-chatml`` (chatml built-in,
so the ``auto`` parser is hermes) it answers ``<tool_call>`` markup when the rendered prompt lists
tools, a final text once it holds a ``<tool_response>``, and JSON valid against TGI's ``grammar``
(forced ``tool_choice``); on ``vllm`` it answers ``tool_calls`` as vLLM does.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
    ChatCompletionToolParam,
)
from pydantic import BaseModel

from tests.clients.stack import TOOL_MODELS, Stack, bounded
from tests.fake_model import ToolModel

pytestmark = pytest.mark.asyncio(loop_scope="module")
TIMEOUT = 10.0

ASK: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "What is the weather in Paris?"},
]


def function(name: str, argument: str) -> ChatCompletionToolParam:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} for a {argument}",
            "parameters": {
                "type": "object",
                "properties": {argument: {"type": "string"}},
                "required": [argument],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }


TOOLS = [function("get_weather", "city"), function("get_time", "tz")]
PARIS = {"city": "Paris"}
#: Every chat model that calls tools, and where its upstream is called (stream or not).
MODELS = {**TOOL_MODELS, "openai": "vllm"}
UPSTREAM = {
    "tgi": ("/tgi/generate", "/tgi/generate_stream"),
    "pipe-chatml": ("/pipe-chatml", "/pipe-chatml"),
    "vllm": ("/vllm/v1/chat/completions", "/vllm/v1/chat/completions"),
}


def client(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=stack.api, api_key="sk-unused", max_retries=0, timeout=TIMEOUT
    )


def arm(stack: Stack, **script: Any) -> ToolModel:
    stack.fake.model = ToolModel(**script)
    return stack.fake.model


def sent(stack: Stack, model: str, *, stream: bool = False) -> list[Any]:
    """The bodies shim sent upstream for ``model``."""
    return [s.json() for s in stack.fake.requests(UPSTREAM[model][stream])]


def prompt(body: Any) -> str:
    return body["inputs"] if "inputs" in body else json.dumps(body["messages"])


def one_call(message: Any) -> Any:
    """The message's only tool call (failing with what the model said instead)."""
    calls = message.tool_calls or []
    assert len(calls) == 1, f"one tool call expected, got {calls!r} and {message.content!r}"
    return calls[0]


def reassemble(chunks: list[Any]) -> tuple[str, dict[int, dict[str, Any]], list[Any]]:
    """Content, tool calls by index, and finish reasons, rebuilt from chunks as clients do."""
    content, calls, finishes = "", {}, []
    for chunk in chunks:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finishes.append(choice.finish_reason)
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = call["id"] or delta.id
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
    return content, calls, finishes


# --- auto: the model decides --------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_tool_call(stack: Stack, model: str) -> None:
    arm(stack, arguments={"get_weather": PARIS})
    async with client(stack) as c:
        completion = await c.chat.completions.create(model=model, messages=ASK, tools=TOOLS)
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert not choice.message.content  # no markup left in the text
    call = one_call(choice.message)
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == PARIS
    # The template rendered the tools (Hermes style); vLLM got them as sent.
    [body] = sent(stack, model)
    if model == "vllm":
        assert body["tools"] == TOOLS
    else:
        assert "<tools>" in prompt(body)
        assert '"get_time"' in prompt(body)


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_tool_call_streamed(stack: Stack, model: str) -> None:
    arm(stack, arguments={"get_weather": PARIS})
    async with client(stack) as c:
        stream = await c.chat.completions.create(
            model=model, messages=ASK, tools=TOOLS, stream=True
        )
        chunks = [chunk async for chunk in stream]
    content, calls, finishes = reassemble(chunks)
    assert content == ""
    assert list(calls) == [0]
    assert calls[0]["id"]
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == PARIS
    assert finishes[-1] == "tool_calls"
    assert all(f is None for f in finishes[:-1])
    assert len({chunk.id for chunk in chunks}) == 1
    # The name arrives once, in the call's first delta (with its id), as OpenAI sends it.
    firsts = [d for ch in chunks for c in ch.choices for d in c.delta.tool_calls or [] if d.id]
    assert len(firsts) == 1
    assert firsts[0].type == "function"


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_stream_helper_parses_arguments(stack: Stack, model: str) -> None:
    """``chat.completions.stream()`` accumulates the deltas and parses strict tools' arguments."""
    arm(stack, arguments={"get_weather": PARIS})
    async with (
        client(stack) as c,
        c.chat.completions.stream(model=model, messages=ASK, tools=TOOLS) as stream,
    ):
        done = [e async for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = await stream.get_final_completion()
    assert len(done) == 1, f"one arguments.done event expected, got {done!r}"
    event = done[0]
    assert event.name == "get_weather"
    assert event.parsed_arguments == PARIS
    call = one_call(final.choices[0].message)
    assert call.function.parsed_arguments == PARIS
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_parallel_tool_calls(stack: Stack, model: str) -> None:
    arm(stack, arguments={"get_weather": PARIS, "get_time": {"tz": "CET"}}, parallel=True)
    async with client(stack) as c:
        completion = await c.chat.completions.create(model=model, messages=ASK, tools=TOOLS)
        stream = await c.chat.completions.create(
            model=model, messages=ASK, tools=TOOLS, stream=True
        )
        chunks = [chunk async for chunk in stream]
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", PARIS),
        ("get_time", {"tz": "CET"}),
    ]
    assert len({c.id for c in calls}) == 2
    _, streamed, _ = reassemble(chunks)
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed.values()] == [
        ("get_weather", PARIS),
        ("get_time", {"tz": "CET"}),
    ]


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_tool_choice_none_answers_in_text(stack: Stack, model: str) -> None:
    arm(stack, text="No tools needed.")
    async with client(stack) as c:
        completion = await c.chat.completions.create(
            model=model, messages=ASK, tools=TOOLS, tool_choice="none"
        )
    assert completion.choices[0].message.content == "No tools needed."
    assert completion.choices[0].message.tool_calls in (None, [])
    assert completion.choices[0].finish_reason == "stop"
    if model != "vllm":  # "none": the template is not given the tools
        assert "<tools>" not in prompt(sent(stack, model)[0])


# --- the loop: call, result, final answer ----------------------------------------------------


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_two_turn_loop(stack: Stack, model: str) -> None:
    arm(stack, arguments={"get_weather": PARIS})
    async with client(stack) as c:
        first = await c.chat.completions.create(model=model, messages=ASK, tools=TOOLS)
        call = one_call(first.choices[0].message)
        result = f"18 C and sunny in {json.loads(call.function.arguments)['city']}"
        history: list[ChatCompletionMessageParam] = [
            *ASK,
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": result},
        ]
        final = await c.chat.completions.create(model=model, messages=history, tools=TOOLS)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == f"The tool says: {result}"
    assert not final.choices[0].message.tool_calls
    second = sent(stack, model)[1]
    if model == "vllm":
        assert second["messages"][-1]["tool_call_id"] == call.id
    else:  # the earlier call and its result, rendered Hermes style
        assert '<tool_call>\n{"name": "get_weather"' in prompt(second)
        assert f"<tool_response>\n{result}\n</tool_response>" in prompt(second)


# --- forced choice: TGI's grammar; the pipeline cannot force ------------------------------------

FORCED: dict[str, tuple[ChatCompletionToolChoiceOptionParam, list[str], str]] = {
    "required": ("required", ["get_weather", "get_time"], "get_weather"),
    "named": ({"type": "function", "function": {"name": "get_time"}}, ["get_time"], "get_time"),
}


@pytest.mark.parametrize(("choice", "allowed", "called"), FORCED.values(), ids=FORCED.keys())
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@bounded()
async def test_forced_choice_on_tgi_uses_a_grammar(
    stack: Stack, choice: Any, allowed: list[str], called: str, stream: bool
) -> None:
    arm(stack, arguments={"get_weather": PARIS, "get_time": {"tz": "UTC"}})
    async with client(stack) as c:
        if stream:
            chunks = [
                chunk
                async for chunk in await c.chat.completions.create(
                    model="tgi", messages=ASK, tools=TOOLS, tool_choice=choice, stream=True
                )
            ]
            _, calls, finishes = reassemble(chunks)
            got = [(call["name"], json.loads(call["arguments"])) for call in calls.values()]
            finish = finishes[-1]
        else:
            completion = await c.chat.completions.create(
                model="tgi", messages=ASK, tools=TOOLS, tool_choice=choice
            )
            message = completion.choices[0].message
            got = [
                (t.function.name, json.loads(t.function.arguments))
                for t in message.tool_calls or []
            ]
            finish = completion.choices[0].finish_reason
    args = PARIS if called == "get_weather" else {"tz": "UTC"}
    assert got == [(called, args)]
    assert finish == "tool_calls"
    # The fake checked that the grammar is a JSON schema and that the answer satisfies it.
    grammar = sent(stack, "tgi", stream=stream)[0]["parameters"]["grammar"]
    assert grammar["type"] == "json"
    branches = grammar["value"]["anyOf"]
    assert [b["properties"]["name"]["const"] for b in branches] == allowed


@pytest.mark.parametrize("choice", [c for c, _, _ in FORCED.values()], ids=FORCED.keys())
@bounded()
async def test_forced_choice_on_a_pipeline_is_a_400(stack: Stack, choice: Any) -> None:
    arm(stack)
    async with client(stack) as c:
        with pytest.raises(openai.BadRequestError) as rejected:
            await c.chat.completions.create(
                model="pipe-chatml", messages=ASK, tools=TOOLS, tool_choice=choice
            )
    assert rejected.value.param == "tool_choice"
    assert stack.upstream_calls("/pipe-chatml") == 0


@bounded()
async def test_tool_choice_naming_an_unknown_function_is_a_400(stack: Stack) -> None:
    async with client(stack) as c:
        with pytest.raises(openai.BadRequestError) as rejected:
            await c.chat.completions.create(
                model="tgi",
                messages=ASK,
                tools=TOOLS,
                tool_choice={"type": "function", "function": {"name": "get_stock"}},
            )
    assert rejected.value.param == "tool_choice"
    assert stack.upstream_calls("/tgi/generate") == 0


# --- legacy functions / function_call ------------------------------------------------------------

FUNCTIONS = [t["function"] for t in TOOLS]


@pytest.mark.parametrize("model", TOOL_MODELS.values(), ids=TOOL_MODELS.keys())
@bounded()
async def test_legacy_functions(stack: Stack, model: str) -> None:
    arm(stack, arguments={"get_weather": PARIS})
    async with client(stack) as c:
        completion = await c.chat.completions.create(
            model=model, messages=ASK, functions=FUNCTIONS, function_call="auto"
        )
    [choice] = completion.choices
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None
    assert choice.message.function_call is not None
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == PARIS


@bounded()
async def test_legacy_named_function_call_on_tgi(stack: Stack) -> None:
    arm(stack, arguments={"get_time": {"tz": "UTC"}})
    async with client(stack) as c:
        completion = await c.chat.completions.create(
            model="tgi", messages=ASK, functions=FUNCTIONS, function_call={"name": "get_time"}
        )
        history: list[ChatCompletionMessageParam] = [
            *ASK,
            {"role": "assistant", "content": None,
             "function_call": completion.choices[0].message.function_call.model_dump()},  # type: ignore[union-attr]
            {"role": "function", "name": "get_time", "content": "12:00"},
        ]  # fmt: skip
        final = await c.chat.completions.create(model="tgi", messages=history, functions=FUNCTIONS)
    call = completion.choices[0].message.function_call
    assert call is not None
    assert (call.name, json.loads(call.arguments)) == ("get_time", {"tz": "UTC"})
    assert completion.choices[0].finish_reason == "function_call"
    grammar = sent(stack, "tgi")[0]["parameters"]["grammar"]
    assert [b["properties"]["name"]["const"] for b in grammar["value"]["anyOf"]] == ["get_time"]
    # The function result went back to the model as a tool result.
    assert final.choices[0].message.content == "The tool says: 12:00"


# --- structured outputs: .parse() with pydantic ------------------------------------------------


class Weather(BaseModel):
    city: str
    temperature_c: int


class GetWeather(BaseModel):
    """Get the weather for a city."""

    city: str


@pytest.mark.parametrize("beta", [False, True], ids=["chat", "beta.chat"])
@bounded()
async def test_parse_response_format_on_tgi(stack: Stack, beta: bool) -> None:
    arm(stack, json={"city": "Paris", "temperature_c": 21})
    async with client(stack) as c:
        completions = c.beta.chat.completions if beta else c.chat.completions
        completion = await completions.parse(model="tgi", messages=ASK, response_format=Weather)
    assert completion.choices[0].message.parsed == Weather(city="Paris", temperature_c=21)
    grammar = sent(stack, "tgi")[0]["parameters"]["grammar"]
    assert grammar["type"] == "json"
    assert set(grammar["value"]["properties"]) == {"city", "temperature_c"}


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@bounded()
async def test_parse_pydantic_function_tool(stack: Stack, model: str) -> None:
    arm(stack, arguments={"GetWeather": PARIS})
    async with client(stack) as c:
        completion = await c.chat.completions.parse(
            model=model, messages=ASK, tools=[openai.pydantic_function_tool(GetWeather)]
        )
    call = one_call(completion.choices[0].message)
    assert call.function.parsed_arguments == GetWeather(city="Paris")
