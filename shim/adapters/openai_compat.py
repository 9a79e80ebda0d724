"""OpenAI-speaking upstreams (TGI Messages API, vLLM, SGLang, the HF router): a thin
pass-through. The request goes out as the client sent it but for a few normalisations; the
answer comes back with our model name and OpenAI's exact shapes. Pure functions on dicts.

Upstream quirks repaired on the way back (PROTOCOLS.md §2): TGI's empty ``id``; its
``eos_token`` / ``stop_sequence`` / ``""`` finish reasons; tool-call ``arguments`` sent as an
object (TGI < 3.2) and integer call ids.

The legacy ``functions`` API goes out as ``tools`` and comes back as ``function_call``
(``_functions``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shim import hf
from shim.adapters._functions import as_legacy
from shim.errors import (
    InvalidRequestError,
    UpstreamError,
    UpstreamRejectedError,
    decode_answer,
    invalid_response,
)

#: Which OpenAI operation a request is: chat or (legacy) completions.
Kind = Literal["chat", "completions"]
_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "": None}
_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


def to_payload(request: dict[str, Any], *, upstream_model: str, stream: bool) -> bytes:
    """The client's request for the upstream: model rewritten, ``stop`` as a list (TGI rejects
    a bare string), ``stream_options`` only on streams (vLLM rejects it otherwise)."""
    out = dict(request)
    out["model"] = upstream_model
    stop = out.get("stop")
    if isinstance(stop, str):
        out["stop"] = [stop]
    if not stream:
        out.pop("stream_options", None)
        out.pop("stream", None)
    else:
        out["stream"] = True
    try:
        return _encoder.encode(out)
    except RecursionError:
        # Decoded, but too deep to encode again from here: the decoder's limit, roughly.
        raise InvalidRequestError("The request body is nested too deeply.") from None


def chat_from_completion(request: dict[str, Any]) -> dict[str, Any]:
    """A legacy completions request as a chat request (for the HF router, which only serves
    chat): the prompt becomes one user message."""
    prompt = request.get("prompt")
    if not isinstance(prompt, str):
        raise UpstreamRejectedError(
            "This model's upstream only serves chat: `prompt` must be a single string.",
            reason="http_4xx",
            param="prompt",
        )
    dropped = ("prompt", "echo", "suffix", "logprobs", "best_of")
    chat = {k: v for k, v in request.items() if k not in dropped}
    chat["messages"] = [{"role": "user", "content": prompt}]
    return chat


def _fix_tool_calls(calls: Any) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise invalid_response("`tool_calls` is not a list")
    for i, call in enumerate(calls):
        if not isinstance(call, dict):
            raise invalid_response("a tool call is not an object")
        call.setdefault("index", i)
        if "id" in call and not isinstance(call["id"], str):
            call["id"] = f"call_{call['id']}"
        function = call.get("function")
        if isinstance(function, dict):
            args = function.get("arguments")
            if args is not None and not isinstance(args, str):
                function["arguments"] = _encoder.encode(args).decode()
            function.pop("description", None)


def _check_message(choice: dict[str, Any], key: str) -> None:
    """A chat choice's ``message`` (or a chunk's ``delta``): an object whose ``content`` is a
    string or null (OpenAI ``ChatCompletionResponseMessage``)."""
    message = choice.get(key)
    if not isinstance(message, dict):
        raise invalid_response(f"a choice without a `{key}` object")
    if not isinstance(message.get("content"), str | None):
        raise invalid_response(f"`{key}.content` is not a string")
    _fix_tool_calls(message.get("tool_calls"))
    if message.get("tool_calls") and choice.get("finish_reason") == "stop":
        choice["finish_reason"] = "tool_calls"


def _fix_choices(data: dict[str, Any], *, stream: bool, chat: bool, legacy: bool = False) -> None:
    """Check what OpenAI requires of each choice (``index``; ``message`` or ``delta`` for chat,
    ``text`` for completions; a string ``finish_reason``) and repair TGI's quirks."""
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise invalid_response("no `choices` in the upstream answer")
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise invalid_response("a choice is not an object")
        index = choice.setdefault("index", i)
        if not isinstance(index, int) or isinstance(index, bool):
            raise invalid_response("a choice's `index` is not an integer")
        reason = choice.get("finish_reason")
        if not isinstance(reason, str | None):
            raise invalid_response("a choice's `finish_reason` is not a string")
        if reason in _FINISH:
            choice["finish_reason"] = _FINISH[reason]
        if chat:
            key = "delta" if stream else "message"
            _check_message(choice, key)
            if legacy:
                as_legacy(choice, key)
        elif not isinstance(choice.get("text"), str):
            raise invalid_response("a completion choice without `text`")


def checked_chat(data: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """A chat answer or chunk, checked and repaired as ``rewrite`` does (an error event
    raises), for readers of its content (``openai_answer``)."""
    if data.get("error"):
        raise stream_error(data)
    _fix_choices(data, stream=stream, chat=True)
    return data


def decode(body: bytes) -> dict[str, Any]:
    return decode_answer(_decoder, body, "not a JSON object")


def rewrite(
    data: dict[str, Any],
    *,
    model: str,
    id: str,
    created: int,
    stream: bool,
    chat: bool,
    as_completion: bool = False,
    object: str | None = None,
    legacy: bool = False,
) -> bytes:
    """An upstream answer or chunk, as the client must see it. ``chat``: the upstream answered
    a chat request (``as_completion``: to be sent on as a completion); ``object`` is set on
    every answer and chunk; ``legacy``: tool calls go back as ``function_call``."""
    if data.get("error"):
        # As the openai SDK reads an event: a truthy `error` makes it an error (so its text
        # is scrubbed like every upstream message, never forwarded as a chunk).
        raise stream_error(data)
    try:
        _fix_choices(data, stream=stream, chat=chat, legacy=legacy)
        if as_completion:
            chat_as_completion(data, stream=stream)
        if object is not None:
            data["object"] = object
        data["model"] = model
        data["id"] = id
        data["created"] = created
        # A string in OpenAI's schema: some upstreams send null, which strict clients reject.
        if "system_fingerprint" in data and data["system_fingerprint"] is None:
            del data["system_fingerprint"]
        return _encoder.encode(data)
    except RecursionError:
        # Decoded, but too deep to encode again from here (tool-call arguments, extra fields).
        raise invalid_response("nested too deeply") from None


def chat_as_completion(data: dict[str, Any], *, stream: bool) -> None:
    """Turn a chat answer (or chunk) into a legacy completions one, in place."""
    data["object"] = "text_completion"
    for choice in data.get("choices") or []:
        message = choice.pop("delta" if stream else "message", None) or {}
        choice["text"] = message.get("content") or ""
        choice.setdefault("logprobs", None)


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= hf.MAX_COUNT:
        return value
    return None


def usage_of(data: dict[str, Any]) -> tuple[int, int] | None:
    """(prompt, completion) tokens when the answer reports both as counts (not negative, not
    huge: they feed counters and rate limits)."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    return prompt, completion


def stream_error(data: dict[str, Any]) -> UpstreamError:
    """An error event (``{"error": {"message", "http_status_code"}}`` or ``{"error": str}``)."""
    error = data.get("error")
    message: Any = error
    status = None
    if isinstance(error, dict):
        message = error.get("message")
        status = error.get("http_status_code") or error.get("code")
    # Only a string is read: anything else may be nested arbitrarily deep.
    text = message if isinstance(message, str) and message else "no message"
    if isinstance(status, int) and 400 <= status < 500 and status != 429:
        return UpstreamRejectedError(text)
    return UpstreamError(f"The upstream failed: {text}")


def has_content(data: dict[str, Any]) -> bool:
    """Whether a chunk carries output (text or a tool call): a token for the stream's clock."""
    for choice in data.get("choices") or ():
        delta = choice.get("delta") or {}
        if (
            delta.get("content")
            or delta.get("tool_calls")
            or delta.get("function_call")
            or choice.get("text")
        ):
            return True
    return False


def finished(data: dict[str, Any]) -> bool:
    """Whether a chunk ends a choice (a stream may still send its usage after it)."""
    return any(choice.get("finish_reason") for choice in data.get("choices") or ())


class Rewriter:
    """An upstream answer or chunk as the client must see it: our model name, the reply's one
    id and creation time (made by the caller), OpenAI's ``object``, and a chat answer turned
    back into a completion when the upstream serves chat only."""

    __slots__ = ("as_completion", "chat", "created", "id", "legacy", "model", "objects")

    def __init__(
        self,
        *,
        model: str,
        id: str,
        created: int,
        kind: Kind,
        as_completion: bool,
        legacy: bool = False,
    ):
        self.model = model
        # The client used the legacy `functions` API: calls go back as `function_call`.
        self.legacy = legacy
        self.id = id
        self.created = created
        self.as_completion = as_completion
        # Whether the upstream is asked (and answers) a chat request.
        self.chat = kind == "chat" or as_completion
        # (answer, chunk) `object`. Always set: the openai SDK's stream helpers drop chunks
        # whose `object` is not "chat.completion.chunk" (TGI < 2.1 sends "text_completion";
        # some upstreams leave it out of the usage chunk).
        self.objects = (
            ("chat.completion", "chat.completion.chunk")
            if kind == "chat"
            else ("text_completion", "text_completion")
        )

    def __call__(self, data: dict[str, Any], *, stream: bool) -> bytes:
        return rewrite(
            data,
            model=self.model,
            id=self.id,
            created=self.created,
            stream=stream,
            chat=self.chat,
            as_completion=self.as_completion,
            object=self.objects[stream],
            legacy=self.legacy,
        )
