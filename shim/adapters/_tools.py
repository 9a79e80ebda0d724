"""A request's tools on rendered protocols (tgi, pipeline): validated once into a ``ToolPlan``
that says what the chat template gets, which functions may be called, and whether a call is
forced; TGI's grammar for a forced call; the legacy ``functions`` API; parser auto-detection.

Forced calls follow TGI's router (router/src/infer/tool_grammar.rs): a JSON grammar that admits
exactly one ``{"name", "arguments"}`` object of an allowed function. ``parallel_tool_calls``
cannot widen it: a grammar for several calls would also fix how many, so a forced answer is one
call whatever the flag says (TGI does the same). Unforced answers follow the flag: false keeps
the first call only (``AnswerParser(parallel=...)``).

Legacy ``functions`` / ``function_call`` become ``tools`` / ``tool_choice`` (``ToolPlan.legacy``).
The serving layer answers those in the legacy shape: the first call as ``message.function_call``
``{"name", "arguments"}`` with no ``tool_calls``, ``finish_reason: "function_call"``; streamed
as ``delta.function_call`` (``{"name", "arguments": ""}``, then ``{"arguments": piece}``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shim.config import ToolParser
from shim.errors import InvalidRequestError
from shim.openai import chat

# Llama 3.x's tool prompt (its templates and TGI's default `tool_prompt` share this phrase).
_LLAMA3_TOOL_PROMPT = "JSON for a function call"


def resolve_tool_parser(
    setting: Literal["auto", ToolParser], template_source: str | None
) -> ToolParser:
    """The parser a model uses: as configured, or for ``auto`` the one its template writes."""
    if setting != "auto":
        return setting
    source = template_source or ""
    if "[TOOL_CALLS]" in source:
        return "mistral"
    if "<tool_call>" in source:
        return "hermes"
    if "<|python_tag|>" in source or _LLAMA3_TOOL_PROMPT in source:
        return "llama3_json"
    return "none"


class ToolPlan(msgspec.Struct, frozen=True):
    # What the chat template gets as `tools` (OpenAI's `{"type": "function", "function": {..}}`
    # wrappers, as transformers passes them); None: no tools in the prompt, no calls parsed.
    tools: list[dict[str, Any]] | None = None
    # The functions the model may call.
    names: tuple[str, ...] = ()
    # `tool_choice` "required" or a named function: the answer must be a call.
    forced: bool = False
    # `parallel_tool_calls` is not false.
    parallel: bool = True
    # Asked with the legacy `functions`: answer with `function_call`.
    legacy: bool = False


NO_TOOLS = ToolPlan()


def plan_request(req: chat.ChatCompletionRequest) -> ToolPlan:
    """Every tool field of a chat request, validated (400 naming the field at fault)."""
    if req.functions is not None or req.function_call is not None:
        if req.tools is not None or req.tool_choice is not None:
            raise InvalidRequestError(
                "Send `tools` or the legacy `functions`, not both.", param="functions"
            )
        tools, choice = from_functions(req.functions, req.function_call)
        plan = plan_tools(tools, choice, parallel_tool_calls=False)
        return msgspec.structs.replace(plan, legacy=True) if plan.tools is not None else plan
    return plan_tools(req.tools, req.tool_choice, parallel_tool_calls=req.parallel_tool_calls)


def plan_tools(
    tools: list[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any] | None,
    *,
    parallel_tool_calls: bool | None = None,
) -> ToolPlan:
    """``tools`` + ``tool_choice`` (+ ``parallel_tool_calls``) → the plan; 400 on a tool that is
    not a function, a malformed one, or a ``tool_choice`` naming a function not in ``tools``."""
    functions = _functions(tools or [])
    mode, allowed = _choice(tool_choice, functions)
    if mode == "none" or not functions:
        return NO_TOOLS
    names = tuple(name for name in functions if allowed is None or name in allowed)
    return ToolPlan(
        tools=[functions[name] for name in names],
        names=names,
        forced=mode == "required",
        parallel=parallel_tool_calls is not False,
    )


def _functions(tools: list[Any]) -> dict[str, dict[str, Any]]:
    """Name → tool wrapper, in request order."""
    functions: dict[str, dict[str, Any]] = {}
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequestError("Each tool must be an object.", param=f"tools[{i}]")
        if tool.get("type", "function") != "function":
            raise InvalidRequestError(
                f"Tool type `{tool.get('type')}` is not supported here; only `function` tools are.",
                param=f"tools[{i}].type",
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise InvalidRequestError(
                "A function tool needs `function`.", param=f"tools[{i}].function"
            )
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError(
                "A function needs a `name`.", param=f"tools[{i}].function.name"
            )
        if name in functions:
            raise InvalidRequestError(
                f"Two tools are named `{name}`.", param=f"tools[{i}].function.name"
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidRequestError(
                "`parameters` must be a JSON Schema object.",
                param=f"tools[{i}].function.parameters",
            )
        functions[name] = {"type": "function", "function": function}
    return functions


def _choice(
    choice: str | dict[str, Any] | None, functions: dict[str, dict[str, Any]]
) -> tuple[Literal["none", "auto", "required"], set[str] | None]:
    """``tool_choice`` → (mode, the allowed names or None for all)."""
    if choice is None:
        return "auto", None
    if choice == "none":
        return "none", None
    if choice == "auto":
        return "auto", None
    if choice == "required":
        if not functions:
            raise InvalidRequestError(
                '`tool_choice` "required" needs `tools`.', param="tool_choice"
            )
        return "required", None
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        return "required", {_known(name, functions)}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools")
        spec = spec if isinstance(spec, dict) else {}
        mode = spec.get("mode", "auto")
        listed = spec.get("tools")
        if mode not in ("auto", "required") or not isinstance(listed, list) or not listed:
            raise InvalidRequestError(
                "`allowed_tools` needs `mode` (auto or required) and a list of `tools`.",
                param="tool_choice",
            )
        names = {_known(_tool_name(item), functions) for item in listed}
        return mode, names
    raise InvalidRequestError(
        '`tool_choice` must be "none", "auto", "required" or '
        '{"type": "function", "function": {"name": ...}}.',
        param="tool_choice",
    )


def _tool_name(item: Any) -> Any:
    function = item.get("function") if isinstance(item, dict) else None
    return function.get("name") if isinstance(function, dict) else None


def _known(name: Any, functions: dict[str, dict[str, Any]], param: str = "tool_choice") -> str:
    if not isinstance(name, str) or name not in functions:
        raise InvalidRequestError(
            f"`{param}` names the function `{name}`, which is not in `tools`."
            if isinstance(name, str)
            else f"`{param}` must name a function.",
            param=param,
        )
    return name


def from_functions(
    functions: list[dict[str, Any]] | None, function_call: str | dict[str, Any] | None
) -> tuple[list[dict[str, Any]] | None, str | dict[str, Any] | None]:
    """Legacy ``functions`` / ``function_call`` → ``tools`` / ``tool_choice``."""
    tools = [{"type": "function", "function": f} for f in functions or []]
    names: dict[str, dict[str, Any]] = {}
    for i, function in enumerate(functions or []):
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("A function needs a `name`.", param=f"functions[{i}].name")
        names[name] = function
    if function_call is None or function_call in ("none", "auto"):
        return tools or None, function_call
    if isinstance(function_call, dict):
        name = _known(function_call.get("name"), names, param="function_call")
        return tools, {"type": "function", "function": {"name": name}}
    raise InvalidRequestError(
        '`function_call` must be "none", "auto" or {"name": ...}.', param="function_call"
    )


# --- forced calls on TGI ---------------------------------------------------------------------

_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def tool_grammar(plan: ToolPlan) -> dict[str, Any] | None:
    """TGI's ``grammar`` for a forced call: ``{"type": "json", "value": SCHEMA}`` where SCHEMA
    admits one ``{"name": <allowed name>, "arguments": <its parameters>}``; None if not forced.
    The answer is read with ``AnswerParser(tool_parser="forced")``."""
    if not plan.forced or not plan.tools:
        return None
    options = [_call_schema(i, tool["function"]) for i, tool in enumerate(plan.tools)]
    return {"type": "json", "value": {"anyOf": options}}


def _call_schema(i: int, function: dict[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters") or _NO_PARAMETERS
    # Local `$ref`s ("#/$defs/X", as pydantic writes them) point into the tool's own schema,
    # which is no longer the document root once nested here.
    parameters = _rebase(parameters, f"#/anyOf/{i}/properties/arguments")
    return {
        "type": "object",
        # "name" first: constrained generation writes properties in order, so the name (what a
        # stream needs first) comes before the arguments.
        "properties": {
            "name": {"type": "string", "const": function["name"]},
            "arguments": parameters,
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _rebase(schema: Any, base: str) -> Any:
    if isinstance(schema, dict):
        out = {k: _rebase(v, base) for k, v in schema.items()}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            out["$ref"] = base + ref[1:]
        return out
    if isinstance(schema, list):
        return [_rebase(item, base) for item in schema]
    return schema
