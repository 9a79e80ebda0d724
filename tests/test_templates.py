"""Chat templates: built-ins render the reference targets (PROTOCOLS.md §8.3), as transformers
renders them (trim_blocks/lstrip_blocks, raise_exception), with the leading BOS stripped; tools
and tool history through the built-ins and one fixture per family (tests/templates/), compared
with transformers' own rendering where it is installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shim.adapters import _prompt
from shim.adapters._answer import parse_answer
from shim.adapters._reasoning import resolve_reasoning_parser
from shim.adapters._result import ToolCall
from shim.adapters._tools import resolve_tool_parser
from shim.loader import parse_config
from shim.openai import chat
from shim.routing import Router
from shim.templates import BUILTINS, ChatTemplate, TemplateError, from_tokenizer_config, resolve

SYS_USER = [
    {"role": "system", "content": "You are a helpful assistant"},
    {"role": "user", "content": "Hello"},
]


def render(name: str, messages: list[dict[str, str]]) -> str:
    return resolve(name, base_dir=Path("."), bos_token=None, eos_token=None).render(messages)


TARGETS = [
    pytest.param(
        "chatml",
        SYS_USER,
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        id="chatml",
    ),
    pytest.param(
        "llama-3",
        SYS_USER,
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        id="llama-3-bos-stripped",
    ),
    pytest.param(
        "llama-2",
        [*SYS_USER, {"role": "assistant", "content": "Hi there"}, {"role": "user", "content": "Who are you"}],
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are you [/INST]",
        id="llama-2",
    ),
    pytest.param(
        "mistral",
        [{"role": "user", "content": "Hello, how are you?"}, {"role": "assistant", "content": "Great."}, {"role": "user", "content": "Bye"}],
        "[INST] Hello, how are you? [/INST]Great.</s>[INST] Bye [/INST]",
        id="mistral",
    ),
    pytest.param("mistral", SYS_USER, "[INST] You are a helpful assistant\n\nHello [/INST]", id="mistral-system-folded"),
    pytest.param(
        "zephyr",
        [{"role": "system", "content": "S"}, {"role": "user", "content": "How many helicopters can a human eat in one sitting?"}],
        "<|system|>\nS</s>\n<|user|>\nHow many helicopters can a human eat in one sitting?</s>\n<|assistant|>\n",
        id="zephyr-trim-blocks",
    ),
    pytest.param(
        "gemma",
        [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"}],
        "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>model\n",
        id="gemma",
    ),
    pytest.param(
        "gemma", SYS_USER, "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\n", id="gemma-system-merged"
    ),
    pytest.param(
        "phi-3",
        SYS_USER,
        "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\n",
        id="phi-3",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "messages", "expected"), TARGETS)
def test_builtin_targets(name: str, messages: list[dict[str, str]], expected: str) -> None:
    assert render(name, messages) == expected


def test_every_builtin_is_covered() -> None:
    assert {p.values[0] for p in TARGETS} == set(BUILTINS)


def test_raise_exception_surfaces_template_message() -> None:
    with pytest.raises(TemplateError, match="Conversation roles must alternate"):
        render("llama-2", [{"role": "assistant", "content": "x"}])


def test_inline_template_and_tojson_does_not_escape() -> None:
    template = resolve(
        "{{ bos_token }}{% for m in messages %}{{ m | tojson }}{% endfor %}",
        base_dir=Path("."),
        bos_token="<s>",
        eos_token=None,
    )
    assert (
        template.render([{"role": "user", "content": "<b>&"}])
        == '{"role": "user", "content": "<b>&"}'
    )


def test_template_from_file(tmp_path: Path) -> None:
    (tmp_path / "t.jinja").write_text("{% for m in messages %}[{{ m.content }}]{% endfor %}")
    template = resolve("t.jinja", base_dir=tmp_path, bos_token=None, eos_token=None)
    assert template.render([{"role": "user", "content": "x"}]) == "[x]"


def test_sandbox_blocks_attribute_escape() -> None:
    template = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        template.render([])


def test_tokenizer_config_variants() -> None:
    plain = from_tokenizer_config(
        b'{"chat_template": "{{ bos_token }}{{ messages[0].content }}", "bos_token": {"content": "<s>"}, "eos_token": "</s>"}',
        jinja=None,
        origin="hub:x",
    )
    assert plain is not None
    assert plain.render([{"role": "user", "content": "hi"}]) == "hi"
    assert "</s>" in plain.stop
    named = from_tokenizer_config(
        b'{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}',
        jinja=None,
        origin="hub:y",
    )
    assert named is not None and named.render([]) == "D"
    separate = from_tokenizer_config(b"{}", jinja="J{{ 1 }}", origin="hub:z")
    assert separate is not None and separate.render([]) == "J1"
    assert from_tokenizer_config(b"{}", jinja=None, origin="hub:none") is None


# --- tools and tool history -------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "templates"
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
# A conversation with a call and its result, as an OpenAI client sends it.
HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "abc123xyz", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "abc123xyz", "content": "22C, sunny"},
    {"role": "assistant", "content": "22C and sunny."},
    {"role": "user", "content": "And Rome?"},
]  # fmt: skip


def chat_messages(items: list[dict[str, Any]]) -> list[chat.ChatMessage]:
    return msgspec.convert(items, list[chat.ChatMessage])


def as_transformers_gets_them(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a transformers user passes: arguments as objects (as its docs ask), the tool
    result's function name, no None values (apply_chat_template drops them)."""
    out = []
    for item in items:
        item = {k: v for k, v in item.items() if v is not None}
        if "tool_calls" in item:
            item["tool_calls"] = [
                {
                    **c,
                    "function": {
                        **c["function"],
                        "arguments": json.loads(c["function"]["arguments"]),
                    },
                }
                for c in item["tool_calls"]
            ]
        if item["role"] == "tool":
            item["name"] = "get_weather"
        out.append(item)
    return out


def fixture(name: str, bos: str = "", eos: str = "") -> ChatTemplate:
    return resolve(str(FIXTURES / name), base_dir=Path("."), bos_token=bos, eos_token=eos)


def builtin(name: str) -> ChatTemplate:
    return resolve(name, base_dir=Path("."), bos_token=None, eos_token=None)


FAMILIES = [
    pytest.param(lambda: fixture("qwen2.5.jinja"), "hermes", id="fixture-qwen2.5"),
    pytest.param(lambda: fixture("hermes3.jinja", "<|begin_of_text|>", "<|im_end|>"), "hermes", id="fixture-hermes3"),
    pytest.param(lambda: fixture("llama3.1.jinja", "<|begin_of_text|>", "<|eot_id|>"), "llama3_json", id="fixture-llama3.1"),
    pytest.param(lambda: fixture("mistral.jinja", "<s>", "</s>"), "mistral", id="fixture-mistral"),
    pytest.param(lambda: builtin("chatml"), "hermes", id="builtin-chatml"),
    pytest.param(lambda: builtin("llama-3"), "llama3_json", id="builtin-llama-3"),
    pytest.param(lambda: builtin("mistral"), "mistral", id="builtin-mistral"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "parser"), FAMILIES)
def test_tools_and_history_render_as_the_family_writes_them(make: Any, parser: str) -> None:
    template = make()
    prompt = _prompt.render(template, chat_messages(HISTORY), tools=TOOLS)
    # The tool's description reaches the prompt; the earlier call in the parser's own format.
    assert "Current weather in a city" in prompt
    written = {
        "hermes": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "llama3_json": '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        "mistral": '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abc123xyz"}]',
    }[parser]
    assert written in prompt
    assert "22C, sunny" in prompt and "And Rome?" in prompt
    # What the model was shown is what its parser reads back.
    assert parse_answer(written, tool_parser=parser).tool_calls == [
        ToolCall("get_weather", '{"city":"Paris"}')
    ]
    # Without tools (tool_choice "none"), the history still renders, the tools do not.
    plain = _prompt.render(template, chat_messages(HISTORY), tools=None)
    assert "Current weather in a city" not in plain and "22C, sunny" in plain


@pytest.mark.parametrize(("make", "parser"), FAMILIES)
def test_rendering_matches_transformers(make: Any, parser: str) -> None:
    utils = pytest.importorskip(
        "transformers.utils.chat_template_utils", reason="transformers is not installed"
    )
    template = make()
    ours = _prompt.render(template, chat_messages(HISTORY), tools=TOOLS)
    rendered, _ = utils.render_jinja_template(
        conversations=[as_transformers_gets_them(HISTORY)],
        tools=TOOLS,
        chat_template=template.source,
        add_generation_prompt=True,
        bos_token=template.bos_token,
        eos_token=template.eos_token,
    )
    theirs = rendered[0]
    if template.bos_token and theirs.startswith(template.bos_token):
        theirs = theirs[len(template.bos_token) :]
    assert ours == theirs


@pytest.mark.parametrize(("make", "parser"), FAMILIES)
def test_auto_parser_detection(make: Any, parser: str) -> None:
    template = make()
    assert resolve_tool_parser("auto", template.source) == parser
    assert resolve_reasoning_parser("auto", template.source) == "none"
    assert resolve_tool_parser("json", template.source) == "json"


@pytest.mark.parametrize("name", ["llama-2", "zephyr", "gemma", "phi-3"])
def test_builtins_without_tool_markup_parse_no_tools(name: str) -> None:
    assert resolve_tool_parser("auto", builtin(name).source) == "none"


@pytest.mark.parametrize(
    ("source", "parser"),
    [
        pytest.param("{{ '<|Assistant|><think>\\n' }}", "think", id="r1-opens-think"),
        pytest.param(
            "{% if '</think>' in content %}{% endif %}", "think", id="strips-old-thinking"
        ),
        pytest.param("{{ messages }}", "none", id="no-think"),
    ],
)
def test_auto_reasoning_detection(source: str, parser: str) -> None:
    assert resolve_reasoning_parser("auto", source) == parser
    assert resolve_reasoning_parser("none", source) == "none"


TOOL_TARGETS = [
    pytest.param(
        "chatml",
        "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to help with the request. Their signatures are listed within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}'
        '\n</tools>\n\nTo call a function, answer with a JSON object holding its name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n22C, sunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n22C and sunny.<|im_end|>\n<|im_start|>user\nAnd Rome?<|im_end|>\n<|im_start|>assistant\n",
        id="chatml",
    ),
    pytest.param(
        "llama-3",
        "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAnswer with a JSON for a function call, choosing one of the functions below and its proper arguments.\n\n"
        'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.\n\n'
        + json.dumps(TOOLS[0], indent=4)
        + "\n\nWeather in Paris?<|eot_id|>"
        '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>'
        "<|start_header_id|>ipython<|end_header_id|>\n\n22C, sunny<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n22C and sunny.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAnd Rome?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        id="llama-3",
    ),
    pytest.param(
        "mistral",
        "[INST] Be brief.\n\nWeather in Paris? [/INST]"
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abc123xyz"}]</s>'
        '[TOOL_RESULTS] {"content": "22C, sunny", "call_id": "abc123xyz"}[/TOOL_RESULTS]22C and sunny.</s>'
        "[AVAILABLE_TOOLS] " + json.dumps(TOOLS) + "[/AVAILABLE_TOOLS][INST] And Rome? [/INST]",
        id="mistral",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "expected"), TOOL_TARGETS)
def test_builtin_tool_targets(name: str, expected: str) -> None:
    assert _prompt.render(builtin(name), chat_messages(HISTORY), tools=TOOLS) == expected


def test_llama3_parallel_calls_render_as_its_parser_reads_them() -> None:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": a}}
        for i, (n, a) in enumerate([("a", '{"x": 1}'), ("b", "{}")])
    ]
    messages = [{"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": calls}]
    prompt = _prompt.render(builtin("llama-3"), chat_messages(messages), tools=TOOLS)
    written = '{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {}}'
    assert written in prompt
    assert parse_answer(written, tool_parser="llama3_json").tool_calls == [
        ToolCall("a", '{"x":1}'),
        ToolCall("b", "{}"),
    ]


def test_mistral_roles_still_alternate_around_tool_turns() -> None:
    with pytest.raises(TemplateError, match="Conversation roles must alternate"):
        render("mistral", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_message_shapes_templates_get() -> None:
    items = _prompt.message_dicts(
        chat_messages(
            [
                *HISTORY[1:4],
                {"role": "assistant", "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "not json"}}]},
                {"role": "assistant", "function_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
                {"role": "function", "name": "get_weather", "content": "-3C"},
            ]
        )
    )  # fmt: skip
    call = items[1]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert items[1]["content"] == ""
    assert items[2] == {
        "role": "tool",
        "content": "22C, sunny",
        "tool_call_id": "abc123xyz",
        "name": "get_weather",
    }
    assert items[3]["tool_calls"][0]["function"]["arguments"] == "not json"
    legacy_call = items[4]["tool_calls"][0]
    assert legacy_call["function"] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert items[5] == {
        "role": "tool",
        "content": "-3C",
        "name": "get_weather",
        "tool_call_id": legacy_call["id"],
    }


def test_route_parsers_follow_config_and_template() -> None:
    config = parse_config(
        '[models.a]\ntask = "text-generation"\nurl = "http://127.0.0.1:1"\nchat_template = "chatml"\n'
        '[models.b]\ntask = "text-generation"\nurl = "http://127.0.0.1:1"\nchat_template = "chatml"\n'
        'tool_parser = "json"\nreasoning_parser = "think"\n'
        '[models.c]\ntask = "text-generation"\nurl = "http://127.0.0.1:1"\nhf_model = "org/m"\n'
    )
    routes = Router(config).routes
    assert (routes["a"].tool_parser, routes["a"].reasoning_parser) == ("hermes", "none")
    assert routes["a"].describe().endswith("tools: hermes, reasoning: none")
    assert (routes["b"].tool_parser, routes["b"].reasoning_parser) == ("json", "think")
    hub = routes["c"]
    assert hub.tool_parser == "none"
    assert hub.describe().endswith(
        "tools: auto (from the Hub template), reasoning: auto (from the Hub template)"
    )
    # The Hub template is learned at startup (the route stays as built): the parsers follow it.
    learned = ChatTemplate("{{ '<think>' }}[TOOL_CALLS]")
    assert hub.parsers(learned) == ("mistral", "think")
    assert hub.describe(learned).endswith("tools: mistral, reasoning: think")
