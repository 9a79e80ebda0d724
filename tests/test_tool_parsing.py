"""Tool calls and reasoning read from a model's text: every format whole, then streamed split
at every position and char by char (the stream must add up to the whole answer), forced-call
grammars checked with jsonschema, request validation, legacy functions."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import msgspec
import pytest

from shim.adapters._answer import Answer, AnswerParser, assemble, parse_answer
from shim.adapters._json_stream import compact
from shim.adapters._reasoning import prompt_opens_think
from shim.adapters._result import (
    Piece,
    ReasoningPiece,
    TextPiece,
    ToolCall,
    ToolCallArguments,
    ToolCallStart,
)
from shim.adapters._tools import (
    NO_TOOLS,
    from_functions,
    plan_request,
    plan_tools,
    tool_grammar,
)
from shim.errors import InvalidRequestError
from shim.openai import chat

W = '{"city":"Paris"}'  # the compact arguments most cases expect
MARKUP = (
    "<tool_call>",
    "</tool_call>",
    "[TOOL_CALLS]",
    "[ARGS]",
    "<|python_tag|>",
    "<think>",
    "</think>",
)


def call(name: str, arguments: str = W) -> ToolCall:
    return ToolCall(name, arguments)


# (parser, model output, content, calls, options); ids say what each case shows.
WHOLE = [
    # --- hermes ---
    pytest.param("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', "", [call("get_weather")], {}, id="hermes-one-call"),
    pytest.param("hermes", 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', "Let me look.\n", [call("get_weather")], {}, id="hermes-content-before"),
    pytest.param("hermes", '<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": {"y": [1, 2]}}\n</tool_call>', "", [call("a", '{"x":1}'), call("b", '{"y":[1,2]}')], {}, id="hermes-parallel"),
    pytest.param("hermes", '<tool_call>{"arguments": {"city": "Paris"}, "name": "get_weather"}</tool_call>', "", [call("get_weather")], {}, id="hermes-arguments-before-name"),
    pytest.param("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}', "", [call("get_weather")], {}, id="hermes-last-block-left-open"),
    pytest.param("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par', "", [call("get_weather", '{"city":"Par')], {}, id="hermes-cut-mid-arguments-keeps-them"),
    pytest.param("hermes", "<tool_call>\nnot json\n</tool_call> ok", "<tool_call>\nnot json\n</tool_call> ok", [], {}, id="hermes-unparseable-stays-text"),
    pytest.param("hermes", '<tool_call>{"foo": 1}</tool_call>', '<tool_call>{"foo": 1}</tool_call>', [], {}, id="hermes-object-without-name-stays-text"),
    pytest.param("hermes", '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n\nDone.', "Done.", [call("get_weather")], {}, id="hermes-text-after-block-kept"),
    pytest.param("hermes", '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}}</tool_call>', "", [call("get_weather")], {}, id="hermes-stray-brace-before-close"),
    pytest.param("hermes", '<tool_call>{"name": "say", "arguments": {"text": "a </tool_call> \\"b\\" \\u00e9"}}</tool_call>', "", [call("say", '{"text":"a </tool_call> \\"b\\" \\u00e9"}')], {}, id="hermes-markup-inside-a-string"),
    pytest.param("hermes", '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}</tool_call>', "", [call("get_weather")], {}, id="hermes-arguments-as-json-string"),
    pytest.param("hermes", '<tool_call>{"name": "now"}</tool_call>', "", [call("now", "{}")], {}, id="hermes-no-arguments"),
    pytest.param("hermes", '<tool_call>{"name": "now", "arguments": null}</tool_call>', "", [call("now", "{}")], {}, id="hermes-null-arguments"),
    pytest.param("hermes", "Plain answer, no tools.", "Plain answer, no tools.", [], {}, id="hermes-plain-text"),
    pytest.param("hermes", '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {}}</tool_call>', "", [call("a", "{}")], {"parallel": False}, id="hermes-parallel-off-keeps-first"),
    pytest.param("hermes", '<tool_call>{"name": "unlisted", "arguments": {}}</tool_call>', "", [call("unlisted", "{}")], {"names": ["get_weather"]}, id="hermes-marker-makes-any-name-a-call"),
    pytest.param("hermes", '{"name": "get_weather", "arguments": {"city": "Paris"}}\n{"name": "b", "arguments": {}}', "", [call("get_weather"), call("b", "{}")], {"names": ["get_weather", "b"]}, id="hermes-tags-dropped-as-special-tokens"),
    pytest.param("hermes", '{"title": "A report"}', '{"title": "A report"}', [], {}, id="hermes-bare-json-that-is-no-call-stays-text"),
    # --- llama3_json ---
    pytest.param("llama3_json", '{"name": "get_weather", "parameters": {"city": "Paris"}}', "", [call("get_weather")], {}, id="llama-parameters-become-arguments"),
    pytest.param("llama3_json", '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}', "", [call("get_weather")], {}, id="llama-python-tag"),
    pytest.param("llama3_json", 'Checking.<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}', "Checking.", [call("get_weather")], {}, id="llama-text-before-python-tag"),
    pytest.param("llama3_json", '{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {}}', "", [call("a", '{"x":1}'), call("b", "{}")], {}, id="llama-semicolon-parallel"),
    pytest.param("llama3_json", '{"type": "function", "name": "get_weather", "arguments": {"city": "Paris"}}', "", [call("get_weather")], {}, id="llama-type-key-and-arguments"),
    pytest.param("llama3_json", '{"name": "get_weather", "parameters": {"city": "Paris"}} I called it.', "", [call("get_weather")], {}, id="llama-text-after-dropped"),
    pytest.param("llama3_json", '{"city": "Paris", "name": "x"}', '{"city": "Paris", "name": "x"}', [], {}, id="llama-json-that-is-no-call-stays-text"),
    pytest.param("llama3_json", '{"name": "Bob", "age": 3}', '{"name": "Bob", "age": 3}', [], {"names": ["get_weather"]}, id="llama-name-not-a-tool-stays-text"),
    pytest.param("llama3_json", 'Sure: {"name": "get_weather", "parameters": {}}', 'Sure: {"name": "get_weather", "parameters": {}}', [], {}, id="llama-bare-json-counts-only-at-the-start"),
    pytest.param("llama3_json", '<|python_tag|>brave_search.call(query="x")', '<|python_tag|>brave_search.call(query="x")', [], {}, id="llama-builtin-tool-call-stays-text"),
    # --- mistral ---
    pytest.param("mistral", '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]', "", [call("get_weather")], {}, id="mistral-v3-array"),
    pytest.param("mistral", '[TOOL_CALLS][{"name": "a", "arguments": {"x": 1}}, {"arguments": {"city": "Paris"}, "name": "b"}]', "", [call("a", '{"x":1}'), call("b")], {}, id="mistral-v3-parallel-any-key-order"),
    pytest.param("mistral", 'Hello[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]\nextra trailing data', "Hello", [call("get_weather")], {}, id="mistral-content-before-trailing-dropped"),
    pytest.param("mistral", '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}', "", [call("get_weather")], {}, id="mistral-v11-args"),
    pytest.param("mistral", '[TOOL_CALLS]add[ARGS]{"a": 3.5, "b": 4}[TOOL_CALLS]multiply[ARGS]{"a": 3, "b": 6}', "", [call("add", '{"a":3.5,"b":4}'), call("multiply", '{"a":3,"b":6}')], {}, id="mistral-v11-parallel"),
    pytest.param("mistral", '[TOOL_CALLS]get_weather{"city": "Paris"}', "", [call("get_weather")], {}, id="mistral-v11-args-marker-decoded-away"),
    pytest.param("mistral", "[TOOL_CALLS]get_time", "", [call("get_time", "{}")], {}, id="mistral-v11-name-only"),
    pytest.param("mistral", "[TOOL_CALLS] not json at all", "[TOOL_CALLS] not json at all", [], {}, id="mistral-unparseable-stays-text"),
    pytest.param("mistral", '[{"name": "get_weather", "arguments": {"city": "Paris"}}]', "", [call("get_weather")], {}, id="mistral-bare-array-marker-skipped"),
    pytest.param("mistral", "[1, 2, 3] are numbers", "[1, 2, 3] are numbers", [], {}, id="mistral-bare-array-of-no-calls-stays-text"),
    # --- json and forced ---
    pytest.param("json", ' \n{"name": "get_weather", "arguments": {"city": "Paris"}}', "", [call("get_weather")], {}, id="json-object"),
    pytest.param("json", '{"answer": 42}', '{"answer": 42}', [], {}, id="json-other-object-stays-text"),
    pytest.param("forced", '{"name": "get_weather", "arguments": {"city": "Paris"}}', "", [call("get_weather")], {}, id="forced-grammar-output"),
    pytest.param("none", '<tool_call>{"name": "a"}</tool_call>', '<tool_call>{"name": "a"}</tool_call>', [], {}, id="none-never-parses"),
]  # fmt: skip

THINK = [
    pytest.param("<think>\nThe user greets.\n</think>\n\nHello!", "Hello!", "The user greets.\n", {}, id="think-block"),
    pytest.param("The user greets.\n</think>\n\nHello!", "Hello!", "The user greets.\n", {"think_open": True}, id="think-opened-by-the-prompt"),
    pytest.param("<think>\nstill thinking", "", "still thinking", {}, id="think-unterminated-is-all-reasoning"),
    pytest.param("no close tag", "", "no close tag", {"think_open": True}, id="think-opened-never-closed"),
    pytest.param("  Just an answer <think> later", "  Just an answer <think> later", "", {}, id="think-only-at-the-start"),
    pytest.param("<thinking>x</thinking>", "<thinking>x</thinking>", "", {}, id="think-other-tag-is-text"),
    pytest.param("<think>\n</think>\n\nHi", "Hi", "", {}, id="think-empty-block"),
    pytest.param('<think>call it</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', "", "call it", {"tool_parser": "hermes"}, id="think-then-hermes-call"),
    pytest.param('<think>r</think>{"name": "get_weather", "parameters": {"city": "Paris"}}', "", "r", {"tool_parser": "llama3_json"}, id="think-then-bare-llama-call"),
]  # fmt: skip


def feed_all(chunks: list[str], **options: Any) -> tuple[Answer, list[Piece]]:
    parser = AnswerParser(**options)
    pieces: list[Piece] = []
    for chunk in chunks:
        pieces += parser.feed(chunk)
    pieces += parser.finish()
    return assemble(pieces), pieces


def splits(text: str) -> list[list[str]]:
    """Every 2-way split, every 3-way split with a middle of up to 6 characters, char by char."""
    out = [[text[:i], text[i:]] for i in range(len(text) + 1)]
    out += [
        [text[:i], text[i:j], text[j:]]
        for i in range(len(text) + 1)
        for j in range(i, min(len(text), i + 6) + 1)
    ]
    return [*out, list(text)]


@pytest.mark.parametrize(("fmt", "text", "content", "calls", "options"), WHOLE)
def test_whole_answer(
    fmt: Any, text: str, content: str, calls: list[ToolCall], options: dict[str, Any]
) -> None:
    answer = parse_answer(text, tool_parser=fmt, **options)
    assert (answer.content, answer.tool_calls) == (content, calls)


@pytest.mark.parametrize(("fmt", "text", "content", "calls", "options"), WHOLE)
def test_stream_matches_whole_at_every_split(
    fmt: Any, text: str, content: str, calls: list[ToolCall], options: dict[str, Any]
) -> None:
    whole = parse_answer(text, tool_parser=fmt, **options)
    for chunks in splits(text):
        got, pieces = feed_all(chunks, tool_parser=fmt, **options)
        assert got == whole, chunks
        _check_pieces(pieces, clean=bool(calls))


@pytest.mark.parametrize(("text", "content", "reasoning", "options"), THINK)
def test_reasoning_whole_and_streamed(
    text: str, content: str, reasoning: str, options: dict[str, Any]
) -> None:
    whole = parse_answer(text, reasoning_parser="think", **options)
    assert (whole.content, whole.reasoning) == (content, reasoning)
    if "tool_parser" in options:
        assert whole.tool_calls == [call("get_weather")]
    for chunks in splits(text):
        got, pieces = feed_all(chunks, reasoning_parser="think", **options)
        assert got == whole, chunks
        _check_pieces(pieces, clean="<thinking>" not in text and "later" not in text)


def _check_pieces(pieces: list[Piece], *, clean: bool) -> None:
    """Calls start before their arguments, are numbered from 0; no markup leaks into text."""
    started: list[int] = []
    for piece in pieces:
        if isinstance(piece, ToolCallStart):
            assert piece.index == len(started)
            started.append(piece.index)
        elif isinstance(piece, ToolCallArguments):
            assert piece.index in started and piece.text
        elif clean:
            assert isinstance(piece, TextPiece | ReasoningPiece)
            assert not any(m in piece.text for m in MARKUP), piece


def test_call_starts_as_soon_as_its_name_is_read() -> None:
    parser = AnswerParser(tool_parser="hermes")
    assert parser.feed('<tool_call>\n{"name": "get_wea') == []
    assert parser.feed('ther", "arguments": {"ci') == [
        ToolCallStart(0, "get_weather"),
        ToolCallArguments(0, '{"ci'),
    ]
    assert parser.feed('ty": "Paris"}}\n</tool_call>') == [ToolCallArguments(0, 'ty":"Paris"}')]
    assert parser.finish() == []


def test_text_is_held_back_only_for_a_marker_prefix() -> None:
    parser = AnswerParser(tool_parser="hermes", reasoning_parser="think")
    assert parser.feed("Hello <tool") == [TextPiece("Hello ")]
    assert parser.feed("box> and more") == [TextPiece("<toolbox> and more")]
    assert parser.feed(" <") == [TextPiece(" ")]
    assert parser.finish() == [TextPiece("<")]


def test_bare_json_is_held_until_it_is_known_not_to_be_a_call() -> None:
    parser = AnswerParser(tool_parser="llama3_json", names=["get_weather"])
    assert parser.feed('{"name": "get_w') == []
    assert parser.feed('eather", "parameters": {}}') == [
        ToolCallStart(0, "get_weather"),
        ToolCallArguments(0, "{}"),
    ]
    other = AnswerParser(tool_parser="llama3_json", names=["get_weather"])
    assert other.feed('{"title": "x"') == [TextPiece('{"title": "x"')]
    assert other.feed("}") == [TextPiece("}")]


def test_arguments_are_the_same_object_compactly() -> None:
    arguments = {"q": "a b", "n": [1, -2.5e-3, True, None], "nested": {"k": '\u00e9\n"\\'}}
    spaced = json.dumps(arguments, indent=2)
    answer = parse_answer(
        f'<tool_call>{{"name": "search", "arguments": {spaced}}}</tool_call>', tool_parser="hermes"
    )
    [found] = answer.tool_calls
    assert json.loads(found.arguments) == arguments
    assert found.arguments == compact(spaced) and " " not in found.arguments.replace("a b", "")


FRAGMENTS = [
    "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "<|python_tag|>", "<think>", "</think>",
    "{", "}", "[", "]", '"name"', '"arguments"', '"parameters"', ":", ",", ";", " ", "\n", '"f"',
    '"x"', "1", "-2.5e3", "true", "null", "abc", '\\"', '"', "<", "[TOOL", "fn", '"\\u00e9"',
    '{"name": "f", "arguments": {"a": [1, {"b": "c"}]}}',
]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_random_answers_stream_like_whole_and_lose_no_text(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12)))
        options: dict[str, Any] = {
            "tool_parser": rng.choice(["hermes", "mistral", "llama3_json", "json", "forced"]),
            "reasoning_parser": rng.choice(["think", "none"]),
            "names": rng.choice([None, ["f"]]),
            "parallel": rng.choice([True, False]),
            "think_open": rng.choice([True, False]),
        }
        whole = parse_answer(text, **options)
        if options["reasoning_parser"] == "none" and not whole.tool_calls:
            assert whole.content == text
        cuts = sorted(rng.sample(range(len(text) + 1), min(3, len(text) + 1)))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert feed_all(chunks, **options)[0] == whole, (text, options)
        assert feed_all(list(text), **options)[0] == whole, (text, options)


def test_prompt_opens_think() -> None:
    assert prompt_opens_think("<|Assistant|><think>\n")
    assert not prompt_opens_think("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not prompt_opens_think("<|im_start|>assistant\n")


# --- requests: tools, tool_choice, legacy functions -------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        pytest.param([{"type": "code_interpreter"}], None, "tools[0].type", id="non-function-tool"),
        pytest.param([WEATHER, {"type": "custom", "custom": {}}], "auto", "tools[1].type", id="second-tool-custom"),
        pytest.param([{"type": "function"}], None, "tools[0].function", id="no-function"),
        pytest.param([{"type": "function", "function": {"description": "x"}}], None, "tools[0].function.name", id="no-name"),
        pytest.param([WEATHER, WEATHER], None, "tools[1].function.name", id="duplicate-name"),
        pytest.param([{"type": "function", "function": {"name": "f", "parameters": "x"}}], None, "tools[0].function.parameters", id="parameters-not-object"),
        pytest.param([WEATHER], {"type": "function", "function": {"name": "get_time"}}, "tool_choice", id="choice-names-unknown-function"),
        pytest.param([WEATHER], {"type": "function"}, "tool_choice", id="choice-without-name"),
        pytest.param([WEATHER], "always", "tool_choice", id="choice-unknown-string"),
        pytest.param(None, "required", "tool_choice", id="required-without-tools"),
        pytest.param([WEATHER], {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "nope"}}]}}, "tool_choice", id="allowed-tools-unknown"),
    ],
)  # fmt: skip
def test_invalid_tools_name_the_field(tools: Any, choice: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan_tools(tools, choice)
    assert caught.value.param == param
    assert caught.value.status_code == 400


def test_plans() -> None:
    assert plan_tools(None, None) is NO_TOOLS
    assert plan_tools([WEATHER], "none") is NO_TOOLS
    auto = plan_tools([WEATHER, TIME], None)
    assert (auto.tools, auto.names, auto.forced, auto.parallel) == (
        [WEATHER, TIME],
        ("get_weather", "get_time"),
        False,
        True,
    )
    named = plan_tools(
        [WEATHER, TIME],
        {"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )
    assert (named.tools, named.names, named.forced, named.parallel) == (
        [TIME],
        ("get_time",),
        True,
        False,
    )
    assert plan_tools([WEATHER, TIME], "required").forced
    allowed = plan_tools(
        [WEATHER, TIME],
        {
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": "auto",
                "tools": [{"type": "function", "function": {"name": "get_weather"}}],
            },
        },
    )
    assert (allowed.names, allowed.forced) == (("get_weather",), False)


def test_legacy_functions_map_to_tools() -> None:
    fn = WEATHER["function"]
    assert from_functions([fn], None) == ([WEATHER], None)
    assert from_functions([fn], "none") == ([WEATHER], "none")
    assert from_functions([fn], {"name": "get_weather"}) == (
        [WEATHER],
        {"type": "function", "function": {"name": "get_weather"}},
    )
    for bad, param in [({"name": "x"}, "function_call"), ("sometimes", "function_call")]:
        with pytest.raises(InvalidRequestError) as caught:
            from_functions([fn], bad)
        assert caught.value.param == param
    with pytest.raises(InvalidRequestError) as caught:
        from_functions([{"description": "no name"}], None)
    assert caught.value.param == "functions[0].name"


def _request(**fields: Any) -> chat.ChatCompletionRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return msgspec.json.decode(msgspec.json.encode(body), type=chat.ChatCompletionRequest)


def test_plan_request_legacy_and_both() -> None:
    plan = plan_request(
        _request(functions=[WEATHER["function"]], function_call={"name": "get_weather"})
    )
    assert (plan.legacy, plan.forced, plan.parallel, plan.names) == (
        True,
        True,
        False,
        ("get_weather",),
    )
    assert plan_request(_request(tools=[WEATHER], parallel_tool_calls=False)).parallel is False
    with pytest.raises(InvalidRequestError) as caught:
        plan_request(_request(tools=[WEATHER], functions=[WEATHER["function"]]))
    assert caught.value.param == "functions"


def test_answer_parser_for_request() -> None:
    text = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    no_tools = AnswerParser.for_request(
        NO_TOOLS, tool_parser="llama3_json", reasoning_parser="none"
    )
    assert no_tools.parse(text) == Answer(text, [])
    forced = plan_tools([WEATHER], "required")
    grammar = AnswerParser.for_request(
        forced, tool_parser="hermes", reasoning_parser="think", grammar=True
    )
    assert grammar.parse(text).tool_calls == [call("get_weather")]
    # Unforced, bare JSON naming no listed tool is the answer's text.
    auto = AnswerParser.for_request(
        plan_tools([TIME], None), tool_parser="json", reasoning_parser="none"
    )
    assert auto.parse(text) == Answer(text, [])


# --- the forced-call grammar, checked as a JSON Schema ----------------------------------------


def _validator(schema: dict[str, Any]) -> Any:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def test_grammar_is_tgi_json_and_one_call() -> None:
    assert tool_grammar(plan_tools([WEATHER], "auto")) is None
    assert tool_grammar(NO_TOOLS) is None
    grammar = tool_grammar(plan_tools([WEATHER, TIME], "required", parallel_tool_calls=True))
    assert grammar is not None and grammar["type"] == "json"
    validator = _validator(grammar["value"])
    good = [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}},
        {"name": "get_time", "arguments": {}},
    ]
    bad = [
        {"name": "get_news", "arguments": {}},  # not an allowed name
        {"name": "get_weather", "arguments": {}},  # misses a required argument
        {"name": "get_weather", "arguments": {"city": 3}},  # wrong type
        {"name": "get_weather", "arguments": {"city": "x", "zip": "1"}},  # not a parameter
        {"name": "get_weather"},
        {"name": "get_time", "arguments": {}, "extra": 1},
        [{"name": "get_time", "arguments": {}}],  # one call, not a list, even with parallel
    ]
    for answer in good:
        assert validator.is_valid(answer), answer
    for answer in bad:
        assert not validator.is_valid(answer), answer


def test_grammar_for_a_named_function_allows_only_it() -> None:
    plan = plan_tools([WEATHER, TIME], {"type": "function", "function": {"name": "get_time"}})
    grammar = tool_grammar(plan)
    assert grammar is not None
    validator = _validator(grammar["value"])
    assert validator.is_valid({"name": "get_time", "arguments": {}})
    assert not validator.is_valid({"name": "get_weather", "arguments": {"city": "Paris"}})


def test_grammar_keeps_local_refs_working() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "book",
            "parameters": {
                "$defs": {
                    "Person": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}},
                        "required": ["name"],
                    }
                },
                "type": "object",
                "properties": {"guest": {"$ref": "#/$defs/Person"}},
                "required": ["guest"],
            },
        },
    }
    grammar = tool_grammar(plan_tools([TIME, tool], "required"))
    assert grammar is not None
    validator = _validator(grammar["value"])
    assert validator.is_valid({"name": "book", "arguments": {"guest": {"name": "Ada"}}})
    assert not validator.is_valid({"name": "book", "arguments": {"guest": {"age": 3}}})


def test_grammar_output_streams_like_whole() -> None:
    text = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    whole = parse_answer(text, tool_parser="forced")
    assert whole.tool_calls == [call("get_weather")]
    for chunks in splits(text):
        assert feed_all(chunks, tool_parser="forced")[0] == whole
