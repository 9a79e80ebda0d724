"""Responses API requests (pure): every field accounted for, what cannot be served refused
with a 400 naming it, and ``input`` read into the items shim stores (``item_reference`` items
put in place by ``resolve`` from the stored responses they name); ``response_chat`` turns the
conversation into a chat request.

Formats follow openai-python's ``types/responses`` (``ResponseCreateParamsBase``, input
items). ``tests/test_responses_request.py`` fails if a field is in no list below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shim.errors import InvalidRequestError
from shim.openai import responses as rs

#: Mapped onto the chat request, the stored record or the response.
MAPPED = frozenset(
    {
        "model", "input", "instructions", "max_output_tokens", "metadata", "parallel_tool_calls",
        "previous_response_id", "store", "stream", "temperature", "text", "tool_choice", "tools",
        "top_p", "truncation",
    }
)  # fmt: skip

#: Accepted and ignored, with the reason.
IGNORED: dict[str, str] = {
    "user": "an end-user id for OpenAI's abuse monitoring; nothing to forward it to",
    "safety_identifier": "same as `user`",
    "prompt_cache_key": "OpenAI prompt caching; TGI and vLLM cache prefixes on their own",
    "prompt_cache_retention": "same as `prompt_cache_key`",
    "prompt_cache_options": "same as `prompt_cache_key`",
    "service_tier": "OpenAI billing tier; not applicable",
    "reasoning": "reasoning effort/summaries of OpenAI models; HF backends take no such knob",
    "include": "extra output (encrypted reasoning, logprobs, tool results) shim does not produce",
    "max_tool_calls": "limits built-in (hosted) tool calls; shim serves none",
    "stream_options": "`include_obfuscation`: shim never obfuscates streams",
    "access_programs": "OpenAI account programs; not applicable",
    "image": "image-generation context settings; no image output",
}

#: Rejected with 400 when set (a true value, a non-empty object).
REJECTED: dict[str, str] = {
    "background": "background mode is not supported; send the request and wait for it",
    "background_options": "background mode is not supported",
    "conversation": "the Conversations API is not served; chain with `previous_response_id`",
    "prompt": "stored prompt templates are not served; send `instructions` and `input`",
    "context_management": "server-side context compaction is not supported",
    "moderation": "moderation is not supported",
    "top_logprobs": "log-probabilities are not returned by the Responses API here",
}

_TOOL_CHOICES = ("auto", "none", "required")
_FORMATS = ("text", "json_object", "json_schema")
_ROLES: dict[str, rs.MessageRole] = {
    "user": "user", "system": "system", "developer": "developer", "assistant": "assistant"
}  # fmt: skip
_TEXT_PARTS = ("input_text", "output_text")
#: The name a `json_schema` format gets when the client gives none (chat requires one).
SCHEMA_NAME = "response"


def item_id(prefix: str, response_id: str, n: int | str) -> str:
    """Item ids derived from the response id (unique with it; no randomness here):
    ``msg_<id>_0`` for output 0, ``fc_<id>_i2`` for input item 2..."""
    return f"{prefix}_{_suffix(response_id, n)}"


def _suffix(response_id: str, n: int | str) -> str:
    return f"{response_id.removeprefix('resp_')}_{n}"


def response_of(item_id: str) -> str | None:
    """The response an item id names (``item_id`` backwards): ``msg_<id>_0`` → ``resp_<id>``;
    None for an id shim did not make."""
    _, _, rest = item_id.partition("_")
    key, _, n = rest.rpartition("_")
    return f"resp_{key}" if key and n else None


@dataclass(frozen=True, slots=True)
class Reference:
    """An ``item_reference`` input item: an earlier item by id, found in the stored response
    its id names (the serving layer reads it, ``resolve`` puts the item in its place)."""

    id: str
    response_id: str | None
    #: Named by the 400 when the item is not found (``input[i].id``).
    param: str


#: What ``read_input`` gives: the items, references still to resolve among them.
Input = list[rs.Item | Reference]


def check(req: rs.ResponseCreateRequest) -> None:
    """400 for what cannot be served (named by its parameter), before any upstream call."""
    for name, reason in REJECTED.items():
        if getattr(req, name):
            raise InvalidRequestError(f"`{name}` is not supported: {reason}.", param=name)
    if req.truncation not in (None, "disabled"):
        raise InvalidRequestError(
            '`truncation` must be "disabled": shim does not cut the conversation to fit.',
            param="truncation",
        )
    for i, tool in enumerate(req.tools or ()):
        if tool.type != "function":
            raise InvalidRequestError(
                f"Tool type `{tool.type}` is not supported: only `function` tools are served "
                "(hosted tools such as web_search, file_search or mcp are OpenAI's).",
                param=f"tools[{i}].type",
            )
        if not tool.name:
            raise InvalidRequestError("A function tool needs a `name`.", param=f"tools[{i}].name")
    _check_tool_choice(req)
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type not in _FORMATS:
        raise InvalidRequestError(
            f"`text.format.type` `{fmt.type}` is not supported (use text, json_object or "
            "json_schema).",
            param="text.format.type",
        )
    if fmt is not None and fmt.type == "json_schema" and fmt.schema is None:
        raise InvalidRequestError("`json_schema` needs a `schema`.", param="text.format.schema")


def _check_tool_choice(req: rs.ResponseCreateRequest) -> None:
    choice = req.tool_choice
    if choice is None or isinstance(choice, str):
        if choice is not None and choice not in _TOOL_CHOICES:
            raise InvalidRequestError(
                f"`tool_choice` `{choice}` is not one of auto, none, required.", param="tool_choice"
            )
        return
    if choice.type != "function":
        raise InvalidRequestError(
            f"`tool_choice.type` `{choice.type}` is not supported (only `function` tools).",
            param="tool_choice.type",
        )
    if choice.name not in {tool.name for tool in req.tools or ()}:
        raise InvalidRequestError(
            f"`tool_choice` names `{choice.name}`, which is not in `tools`.",
            param="tool_choice.name",
        )


# --- input → items ----------------------------------------------------------------------------


def read_input(req: rs.ResponseCreateRequest, *, response_id: str, text_only: bool) -> Input:
    """The request's ``input`` as the items shim stores (ids given where the client sent
    none), item references left for ``resolve``; ``check`` first. Image parts are refused on
    ``text_only`` models; reasoning items are dropped (never sent to a model)."""
    check(req)
    if not req.input:
        if not req.previous_response_id:
            raise InvalidRequestError("`input` is required.", param="input")
        return []
    if isinstance(req.input, str):
        text = rs.InputText(req.input)
        return [rs.Message(id=item_id("msg", response_id, "i0"), role="user", content=[text])]
    items: Input = []
    for i, raw in enumerate(req.input):
        item = _read_item(raw, f"input[{i}]", _suffix(response_id, f"i{i}"), text_only)
        if item is not None:
            items.append(item)
    return items


def _kind(raw: rs.InputItem) -> str:
    if raw.type is not None:
        return raw.type
    # Without `type`: a reference carries nothing but its `id`, a message has role and content.
    if raw.id is not None and raw.role is None and raw.content is None:
        return "item_reference"
    return "message"


def _read_item(
    raw: rs.InputItem, where: str, suffix: str, text_only: bool
) -> rs.Item | Reference | None:
    """One input item; ``suffix`` makes its id when it has none (``msg_`` + suffix...)."""
    kind = _kind(raw)
    if kind == "item_reference":
        if not raw.id:
            raise InvalidRequestError("An `item_reference` needs an `id`.", param=f"{where}.id")
        return Reference(raw.id, response_of(raw.id), f"{where}.id")
    if kind == "message":
        role = _ROLES.get(raw.role or "")
        if role is None:
            # The client's value is not echoed: it may carry template control tokens.
            raise InvalidRequestError(
                f"A message's `role` must be one of {', '.join(_ROLES)}.", param=f"{where}.role"
            )
        content = _read_content(raw, where, text_only)
        return rs.Message(id=raw.id or f"msg_{suffix}", role=role, content=content)
    if kind == "function_call":
        if not raw.call_id or not raw.name:
            raise InvalidRequestError(
                "A `function_call` item needs `call_id` and `name`.", param=f"{where}.call_id"
            )
        return rs.FunctionCall(
            id=raw.id or f"fc_{suffix}",
            call_id=raw.call_id,
            name=raw.name,
            arguments=raw.arguments or "",
        )
    if kind == "function_call_output":
        if not raw.call_id or raw.output is None:
            raise InvalidRequestError(
                "A `function_call_output` item needs `call_id` and `output`.", param=where
            )
        return rs.FunctionCallOutput(
            id=raw.id or f"fco_{suffix}", call_id=raw.call_id, output=_output_text(raw, where)
        )
    if kind == "reasoning":
        return None
    raise InvalidRequestError(
        f"Input item type `{kind}` is not supported (messages, function_call, "
        "function_call_output, reasoning and item_reference items are).",
        param=f"{where}.type",
    )


def _read_content(raw: rs.InputItem, where: str, text_only: bool) -> list[rs.MessageContent]:
    assistant = raw.role == "assistant"
    if raw.content is None or isinstance(raw.content, str):
        text = raw.content or ""
        return [rs.OutputText(text) if assistant else rs.InputText(text)]
    parts: list[rs.MessageContent] = []
    for j, part in enumerate(raw.content):
        if part.type in _TEXT_PARTS:
            text = part.text or ""
            parts.append(rs.OutputText(text) if assistant else rs.InputText(text))
        elif part.type == "refusal":
            # Only the assistant refuses; anywhere else it is just text.
            refusal = part.refusal or ""
            parts.append(rs.Refusal(refusal) if assistant else rs.InputText(refusal))
        elif part.type == "input_image" and part.image_url and not text_only:
            parts.append(rs.InputImage(part.image_url, detail=part.detail or "auto"))
        else:
            raise InvalidRequestError(
                f"Content part type `{part.type}` is not supported {_why(part, text_only)}.",
                param=f"{where}.content[{j}].type",
            )
    return parts


def _why(part: rs.InputContent, text_only: bool) -> str:
    if part.type != "input_image":
        return "(send text parts)"
    if text_only:
        return "by this text-only model (send text parts)"
    return "without an `image_url` (shim serves no files API)"


def _output_text(raw: rs.InputItem, where: str) -> str:
    if isinstance(raw.output, str):
        return raw.output
    texts = []
    for j, part in enumerate(raw.output or ()):
        if part.type not in _TEXT_PARTS:
            raise InvalidRequestError(
                f"Function output part type `{part.type}` is not supported; send text.",
                param=f"{where}.output[{j}].type",
            )
        texts.append(part.text or "")
    return "".join(texts)


def resolve(items: Input, found: Mapping[str, Sequence[rs.Item]]) -> list[rs.Item]:
    """``items`` with each reference replaced by the item it names, looked up in ``found``
    (the conversation of each stored response read for them, by response id: its input items
    and output). A reference to nothing the caller may read is a 400 naming it; one to a
    reasoning item is dropped, as reasoning input is."""
    out: list[rs.Item] = []
    for item in items:
        if not isinstance(item, Reference):
            out.append(item)
            continue
        stored = found.get(item.response_id or "", ())
        target = next((s for s in stored if s.id == item.id), None)
        if target is None:
            raise InvalidRequestError(f"Item with id '{item.id}' not found.", param=item.param)
        if not isinstance(target, rs.ReasoningItem):
            out.append(target)
    return out


def conversation(history: Sequence[rs.Item], items: Sequence[rs.Item]) -> list[rs.Item]:
    """What the model sees (and what is stored as this response's input items): the previous
    response's items, then the new ones. An item the client sent again (same id) is kept once."""
    seen = {item.id for item in history}
    return [*history, *(item for item in items if item.id not in seen)]
