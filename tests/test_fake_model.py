"""The fake tool-calling model (``tests/fake_model.py``): the client tests trust what it says."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from tests.fake_hf import TOKENS, FakeHF
from tests.fake_model import (
    GrammarError,
    ScriptError,
    ToolModel,
    instance,
    tokens,
    tools_in_prompt,
    vllm_chat,
    vllm_chat_events,
)

WEATHER = {
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
TIME = {
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
}
TOOL_LINES = "\n".join(json.dumps({"type": "function", "function": f}) for f in (WEATHER, TIME))
SYSTEM = f"<|im_start|>system\n# Tools\n<tools>\n{TOOL_LINES}\n</tools><|im_end|>\n"
ASK = "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
CALLED = '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather"}\n</tool_call><|im_end|>\n'
RESULT = "<|im_start|>user\n<tool_response>\n18 C, sunny\n</tool_response><|im_end|>\n"
ANSWER_TURN = "<|im_start|>assistant\n"


def hermes(*calls: tuple[str, dict[str, Any]]) -> str:
    return "\n".join(
        f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>" for n, a in calls
    )


PROMPTS = {
    "no tools": ("<|im_start|>user\nhi<|im_end|>\n", {}, False, "Hello from TGI!"),
    "tools: first tool, scripted": (
        SYSTEM + ASK, {"get_weather": {"city": "Paris"}}, False,
        hermes(("get_weather", {"city": "Paris"})),
    ),
    "tools: arguments from the schema": (
        SYSTEM + ASK, {}, False, hermes(("get_weather", {"city": "Paris", "unit": "c"})),
    ),
    "parallel": (
        SYSTEM + ASK, {"get_time": {"tz": "CET"}}, True,
        hermes(("get_weather", {"city": "Paris", "unit": "c"}), ("get_time", {"tz": "CET"})),
    ),
    "tool result: final answer": (
        SYSTEM + ASK + CALLED + RESULT + ANSWER_TURN, {}, False, "The tool says: 18 C, sunny",
    ),
    "a new question after a result: call again": (
        SYSTEM + ASK + CALLED + RESULT + "<|im_start|>assistant\nSunny.<|im_end|>\n" + ASK,
        {"get_weather": {"city": "Rome"}}, False, hermes(("get_weather", {"city": "Rome"})),
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("prompt", "arguments", "parallel", "want"), PROMPTS.values(), ids=PROMPTS.keys()
)
def test_answers_depend_on_the_prompt(
    prompt: str, arguments: dict[str, Any], parallel: bool, want: str
) -> None:
    assert ToolModel(arguments=arguments, parallel=parallel).complete(prompt) == want


def test_plain_answer_is_the_fakes() -> None:
    assert ToolModel().text == "".join(TOKENS)


def test_tools_listed_bare_or_wrapped() -> None:
    bare = f"<tools>\n{json.dumps(WEATHER)}\n</tools>"
    assert tools_in_prompt(bare) == [WEATHER]
    assert tools_in_prompt(SYSTEM) == [WEATHER, TIME]
    assert tools_in_prompt("no tools here") == []


def test_scripted_arguments_must_fit_the_tool() -> None:
    with pytest.raises(ScriptError, match="get_weather"):
        ToolModel(arguments={"get_weather": {"town": "Paris"}}).complete(SYSTEM + ASK)


def forced(*functions: dict[str, Any]) -> dict[str, Any]:
    """TGI's grammar for a forced tool call, as the contract describes it."""
    return {
        "type": "json",
        "value": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"name": {"const": f["name"]}, "arguments": f["parameters"]},
                    "required": ["name", "arguments"],
                }
                for f in functions
            ]
        },
    }


PYDANTIC_SCHEMA = {
    "$defs": {"City": {"properties": {"name": {"type": "string"}}, "required": ["name"],
                       "type": "object"}},
    "properties": {"city": {"$ref": "#/$defs/City"}, "days": {"type": "integer", "minimum": 1},
                   "tags": {"items": {"type": "string"}, "type": "array"}},
    "required": ["city", "days", "tags"],
    "type": "object",
}  # fmt: skip
GRAMMARS = {
    "forced call, scripted": (
        forced(TIME, WEATHER), {"get_time": {"tz": "UTC"}}, None,
        {"name": "get_time", "arguments": {"tz": "UTC"}},
    ),
    "forced call, from the schema": (
        forced(WEATHER), {}, None, {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}},
    ),
    "response_format, scripted": (
        {"type": "json", "value": PYDANTIC_SCHEMA}, {}, {"city": {"name": "Oslo"}, "days": 2, "tags": []},
        {"city": {"name": "Oslo"}, "days": 2, "tags": []},
    ),
    "response_format, $defs": (
        {"type": "json", "value": PYDANTIC_SCHEMA}, {}, None,
        {"city": {"name": "Paris"}, "days": 21, "tags": ["Paris"]},
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("grammar", "arguments", "script", "want"), GRAMMARS.values(), ids=GRAMMARS
)
def test_grammar_answers_validate(
    grammar: dict[str, Any], arguments: dict[str, Any], script: Any, want: Any
) -> None:
    # Under a grammar the prompt does not matter: the answer is the grammar's.
    answer = json.loads(ToolModel(arguments=arguments, json=script).complete(ASK, grammar))
    assert answer == want
    jsonschema.validate(answer, grammar["value"])


BAD_GRAMMARS = {
    "not a schema": ({"type": "json", "value": {"type": 12}}, None, "not a valid JSON Schema"),
    "regex": ({"type": "regex", "value": "a+"}, None, "must be json"),
    "answer cannot satisfy": (
        {"type": "json", "value": PYDANTIC_SCHEMA}, {"days": 0}, "no answer satisfies",
    ),
    "scripted call breaks the tool": (forced(WEATHER), {"name": "get_weather"}, "no answer satisfies"),
}  # fmt: skip


@pytest.mark.parametrize(("grammar", "script", "match"), BAD_GRAMMARS.values(), ids=BAD_GRAMMARS)
def test_bad_grammars_fail_loudly(grammar: dict[str, Any], script: Any, match: str) -> None:
    with pytest.raises(GrammarError, match=match):
        ToolModel(json=script).complete(ASK, grammar)


def test_instance_of_nullable_and_arrays() -> None:
    schema = {"type": "object", "properties": {"a": {"type": ["null", "integer"]},
              "b": {"type": "array", "items": {"type": "boolean"}, "minItems": 2}}}  # fmt: skip
    assert instance(schema) == {"a": 21, "b": [True, True]}


def test_tokens_split_markup() -> None:
    text = hermes(("get_weather", {"city": "Paris"}))
    pieces = tokens(text)
    assert "".join(pieces) == text
    assert "<tool_call>" not in pieces
    assert len(pieces) > 10


async def test_served_by_the_fake_tgi_and_pipeline() -> None:
    fake = FakeHF()
    fake.model = ToolModel(arguments={"get_weather": {"city": "Paris"}})
    want = hermes(("get_weather", {"city": "Paris"}))
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://fake") as client:
        whole = (await client.post("/tgi/generate", json={"inputs": SYSTEM + ASK})).json()
        stream = await client.post("/tgi/generate_stream", json={"inputs": SYSTEM + ASK})
        events = [json.loads(line[5:]) for line in stream.text.splitlines() if line]
        pipeline = await client.post(
            "/pipe", json={"inputs": SYSTEM + ASK, "parameters": {"return_full_text": False}}
        )
        bad = await client.post(
            "/tgi/generate",
            json={"inputs": ASK, "parameters": {"grammar": {"type": "json", "value": {"type": 1}}}},
        )
        no_grammar_on_pipelines = await client.post(
            "/pipe", json={"inputs": ASK, "parameters": {"grammar": forced(WEATHER)}}
        )
    assert whole["generated_text"] == want
    assert "".join(e["token"]["text"] for e in events[:-1]) == want
    assert events[-1]["generated_text"] == want
    assert pipeline.json() == [{"generated_text": want}]
    assert bad.status_code == 422
    assert bad.json()["error_type"] == "validation"
    assert "not a valid JSON Schema" in bad.json()["error"]
    assert no_grammar_on_pipelines.status_code == 400
    assert "grammar" in no_grammar_on_pipelines.json()["error"]


OPENAI_TOOLS = [{"type": "function", "function": f} for f in (WEATHER, TIME)]
CHATS = {
    "auto: first tool": ({"tools": OPENAI_TOOLS}, None, [("get_weather", {"city": "Paris", "unit": "c"})]),
    "named": (
        {"tools": OPENAI_TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
        None, [("get_time", {"tz": "Paris"})],
    ),
    "none": ({"tools": OPENAI_TOOLS, "tool_choice": "none"}, "Hello from TGI!", []),
    "tool result": (
        {"tools": OPENAI_TOOLS, "messages": [{"role": "tool", "tool_call_id": "x", "content": "18 C"}]},
        "The tool says: 18 C", [],
    ),
}  # fmt: skip


@pytest.mark.parametrize(("extra", "content", "calls"), CHATS.values(), ids=CHATS)
def test_vllm_chat_whole_and_streamed_agree(
    extra: dict[str, Any], content: str | None, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    whole = vllm_chat(body, ToolModel())["choices"][0]
    events = vllm_chat_events({**body, "stream": True}, ToolModel())
    assert whole["message"]["content"] == content
    got = [(c["function"]["name"], json.loads(c["function"]["arguments"]))
           for c in whole["message"]["tool_calls"]]  # fmt: skip
    assert got == calls
    assert whole["finish_reason"] == ("tool_calls" if calls else "stop")
    # Reassemble the deltas as a client does.
    text, names, arguments = "", {}, {}
    for event in events:
        delta = event["choices"][0]["delta"]
        text += delta.get("content") or ""
        for call in delta.get("tool_calls", []):
            names.setdefault(call["index"], call["function"].get("name"))
            arguments[call["index"]] = arguments.get(call["index"], "") + call["function"].get(
                "arguments", ""
            )
    assert text == (content or "")
    assert [(names[i], json.loads(arguments[i])) for i in sorted(names)] == calls
    assert events[-1]["choices"][0]["finish_reason"] == whole["finish_reason"]
