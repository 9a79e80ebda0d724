"""A fake tool-calling model: what it answers depends on the prompt, as a real model's would.

``ToolModel`` is plugged into ``FakeHF`` (``fake.model = ToolModel(...)``) and then decides the
text of every TGI ``/generate`` / ``/generate_stream`` and pipeline answer, and the message of
every OpenAI-style chat answer:

- a rendered prompt whose last user turn holds a ``<tool_response>`` gets a final text quoting
  the (last) tool result;
- else a prompt listing tools Hermes/Qwen2.5-style (``<tools>`` JSON lines ``</tools>`` in the
  system turn, as the ``chatml`` built-in renders them) gets
  ``<tool_call>\\n{"name": <first tool>, "arguments": {...}}\\n</tool_call>`` (every tool with
  ``parallel``), the arguments from the per-test ``arguments`` or built from the tool's schema;
- TGI's ``parameters.grammar`` (``{"type": "json", "value": SCHEMA}``) gets JSON valid against
  SCHEMA (checked with ``jsonschema``); an invalid schema or an answer it rejects is a
  ``GrammarError``, which the fake serves as TGI's 422 (``ModelError``);
- anything else gets the plain ``text``.

Formats: Hermes function calling and Qwen2.5's model card (``<tools>``, ``<tool_call>``,
``<tool_response>``); TGI's ``router/src/validation.rs`` (grammar 422s); vLLM's chat answers
(``vllm/entrypoints/openai``: ``chatcmpl-tool-`` call ids, ``finish_reason: "tool_calls"``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

#: Chunk sizes cycled through when an answer is cut into tokens: every marker gets split.
_TOKEN_SIZES = (1, 3, 2, 5, 4)
_TOOLS = re.compile(r"<tools>(.*?)</tools>", re.S)
_TOOL_RESPONSE = re.compile(r"<tool_response>\s*(.*?)\s*</tool_response>", re.S)
#: Where the last user turn starts, in the templates that render tool results as user turns.
_USER_TURN = ("<|im_start|>user", "<|user|>")


class ModelError(ValueError):
    """What the fake serves as TGI's 422 validation error (the pipeline's 400)."""


class GrammarError(ModelError):
    """The grammar is not a JSON schema, or the model's answer cannot satisfy it."""


class ScriptError(ModelError):
    """A test scripted arguments its own tool's schema rejects."""


@dataclass
class ToolModel:
    #: Arguments to call each tool with (by name); a tool not listed gets them from its schema.
    arguments: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The answer under a ``response_format`` grammar (else built from the schema).
    json: Any = None
    #: Call every listed tool (parallel calls) instead of the first only.
    parallel: bool = False
    #: The plain answer (no tools, or tool_choice "none").
    text: str = "Hello from TGI!"
    #: The final answer once a tool result is in the prompt; ``{result}`` is the result.
    final: str = "The tool says: {result}"
    #: Every tool call made, as (name, arguments), in order.
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    # --- rendered prompts (TGI, pipeline) --------------------------------------------------

    def complete(self, prompt: str, grammar: Any = None) -> str:
        """The answer to a rendered prompt, under TGI's ``grammar`` when given."""
        if grammar is not None:
            return self._under_grammar(grammar)
        last_turn = _last_user_turn(prompt)
        results = _TOOL_RESPONSE.findall(last_turn)
        if results:
            return self.final.format(result=results[-1])
        tools = tools_in_prompt(prompt)
        if not tools:
            return self.text
        chosen = tools if self.parallel else tools[:1]
        return "\n".join(self._hermes_call(tool) for tool in chosen)

    def _hermes_call(self, tool: dict[str, Any]) -> str:
        name, arguments = self._call(tool)
        call = json.dumps({"name": name, "arguments": arguments})
        return f"<tool_call>\n{call}\n</tool_call>"

    def _call(self, function: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = function["name"]
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        arguments = self.arguments.get(name)
        if arguments is None:
            arguments = instance(schema)
        try:
            jsonschema.validate(arguments, schema)
        except jsonschema.ValidationError as exc:
            raise ScriptError(f"scripted arguments for {name}: {exc.message}") from None
        self.calls.append((name, arguments))
        return name, arguments

    def _under_grammar(self, grammar: Any) -> str:
        if not isinstance(grammar, dict) or grammar.get("type") not in ("json", "json_object"):
            raise GrammarError(f"grammar type must be json here, got {grammar!r}")
        schema = grammar.get("value")
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except (jsonschema.SchemaError, TypeError, AttributeError) as exc:
            raise GrammarError(f"grammar is not a valid JSON Schema: {exc}") from None
        answer = self.json if self.json is not None else instance(schema, self.arguments)
        try:
            jsonschema.validate(answer, schema)
        except jsonschema.ValidationError as exc:
            raise GrammarError(f"no answer satisfies the grammar: {exc.message}") from None
        if isinstance(answer, dict) and isinstance(answer.get("arguments"), dict):
            self.calls.append((answer["name"], answer["arguments"]))
        return json.dumps(answer)

    # --- OpenAI-style chat (vLLM and other OpenAI upstreams) -------------------------------

    def chat(self, body: dict[str, Any]) -> tuple[str | None, list[tuple[str, str]]]:
        """(content, [(name, arguments JSON)]) for an OpenAI chat request, as vLLM answers."""
        messages = body.get("messages") or []
        tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
        choice = body.get("tool_choice", "auto")
        if messages and messages[-1].get("role") == "tool":
            return self.final.format(result=_text(messages[-1].get("content"))), []
        if not tools or choice == "none":
            return self._chat_text(body), []
        if isinstance(choice, dict):
            tools = [t for t in tools if t["name"] == choice["function"]["name"]]
        chosen = tools if self.parallel else tools[:1]
        return None, [(name, json.dumps(args)) for name, args in map(self._call, chosen)]

    def _chat_text(self, body: dict[str, Any]) -> str:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return self._under_grammar({"type": "json", "value": fmt["json_schema"]["schema"]})
        if fmt.get("type") == "json_object":
            return json.dumps(self.json if self.json is not None else {})
        return self.text


def tokens(text: str) -> list[str]:
    """``text`` cut into small pieces of varying size, so markup is split across tokens."""
    out: list[str] = []
    start = 0
    while start < len(text):
        size = _TOKEN_SIZES[len(out) % len(_TOKEN_SIZES)]
        out.append(text[start : start + size])
        start += size
    return out


def tools_in_prompt(prompt: str) -> list[dict[str, Any]]:
    """The functions listed in a prompt's ``<tools>`` block: JSON values, one per line, either
    OpenAI's ``{"type": "function", "function": {...}}`` (Qwen2.5) or the bare function."""
    # The block that lists something: Qwen2.5's and the chatml built-in's system text names the
    # tags first ("within <tools></tools> XML tags"), an empty match.
    found = next((m for m in _TOOLS.finditer(prompt) if m.group(1).strip()), None)
    if found is None:
        return []
    decoder = json.JSONDecoder()
    block, at, functions = found.group(1), 0, []
    while (start := block.find("{", at)) != -1:
        value, at = decoder.raw_decode(block, start)
        functions.append(value.get("function", value))
    return functions


def instance(schema: Any, arguments: dict[str, dict[str, Any]] | None = None) -> Any:
    """A value valid against ``schema`` (the subset grammars and tools use). For an object of
    ``{"name": {"const": N}, "arguments": ...}`` (a forced tool call), ``arguments[N]`` wins."""
    return _Instance(schema, arguments or {}).of(schema)


@dataclass
class _Instance:
    root: Any
    arguments: dict[str, dict[str, Any]]

    def of(self, schema: Any) -> Any:
        if not isinstance(schema, dict):
            return {}
        if "$ref" in schema:
            return self.of(self._resolve(schema["$ref"]))
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf", "allOf"):
            if schema.get(key):
                return self.of(schema[key][0])
        kind = schema.get("type", "object")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            return self._object(schema)
        if kind == "array":
            return [self.of(schema.get("items", {}))] * max(1, schema.get("minItems", 1))
        return {"string": "Paris", "integer": 21, "number": 21.5, "boolean": True}.get(kind)

    def _object(self, schema: dict[str, Any]) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties", {})
        name = properties.get("name", {}).get("const")
        out = {key: self.of(sub) for key, sub in properties.items()}
        if "arguments" in properties and name in self.arguments:
            out["arguments"] = self.arguments[name]
        return out

    def _resolve(self, ref: str) -> Any:
        node = self.root
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node


def _last_user_turn(prompt: str) -> str:
    starts = [prompt.rfind(marker) for marker in _USER_TURN]
    return prompt[max(starts) :] if max(starts) >= 0 else prompt


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


# --- vLLM's chat answers -------------------------------------------------------------------------

USAGE = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def vllm_chat(body: dict[str, Any], model: ToolModel) -> dict[str, Any]:
    """A non-stream chat completion as vLLM sends it (``tool_calls: []`` on a text answer)."""
    content, calls = model.chat(body)
    message = {"role": "assistant", "content": content, "reasoning_content": None,
               "tool_calls": [_vllm_call(i, name, args) for i, (name, args) in enumerate(calls)]}  # fmt: skip
    choice = {"index": 0, "message": message, "logprobs": None,
              "finish_reason": "tool_calls" if calls else "stop", "stop_reason": None}  # fmt: skip
    return {**_vllm_base(body), "object": "chat.completion", "choices": [choice], "usage": USAGE}


def vllm_chat_events(body: dict[str, Any], model: ToolModel) -> list[dict[str, Any]]:
    """A streamed chat completion as vLLM's tool parsers stream it: a role chunk with empty
    content, then per call one delta with ``id``, ``type`` and ``name`` (no arguments) and the
    arguments in fragments, then an empty delta with the finish reason."""
    content, calls = model.chat(body)
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": token} for token in tokens(content or "")]
    for i, (name, args) in enumerate(calls):
        first = _vllm_call(i, name, args)
        first["function"] = {"name": name}
        deltas.append({"tool_calls": [first]})
        deltas += [{"tool_calls": [{"index": i, "function": {"arguments": part}}]}
                   for part in tokens(args)]  # fmt: skip
    finish = "tool_calls" if calls else "stop"
    choices = [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None} for d in deltas]
    choices.append({"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish})
    base = {**_vllm_base(body), "object": "chat.completion.chunk"}
    events = [{**base, "choices": [choice]} for choice in choices]
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": USAGE})
    return events


def _vllm_call(index: int, name: str, arguments: str) -> dict[str, Any]:
    # vLLM's make_tool_call_id: "chatcmpl-tool-" + random hex (fixed here: tests compare).
    call_id = f"chatcmpl-tool-{index:08d}{sum(map(ord, name)):024x}"
    return {"index": index, "id": call_id, "type": "function",
            "function": {"name": name, "arguments": arguments}}  # fmt: skip


def _vllm_base(body: dict[str, Any]) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "created": 1, "model": body.get("model")}
