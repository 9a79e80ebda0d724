"""OpenAI-speaking upstreams (TGI Messages API, vLLM, SGLang, the HF router): a thin
pass-through. The request goes out as the client sent it but for a few normalisations; the
answer comes back with our model name and OpenAI's exact shapes. Pure functions on dicts.

Upstream quirks repaired on the way back (PROTOCOLS.md §2): TGI's empty ``id``; its
``eos_token`` / ``stop_sequence`` / ``""`` finish reasons; tool-call ``arguments`` sent as an
object (TGI < 3.2) and integer call ids.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shim.errors import UpstreamError, UpstreamRejectedError, invalid_response, scrub

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
    return _encoder.encode(out)


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
    if not isinstance(calls, list):
        return
    for i, call in enumerate(calls):
        if not isinstance(call, dict):
            continue
        call.setdefault("index", i)
        if "id" in call and not isinstance(call["id"], str):
            call["id"] = f"call_{call['id']}"
        function = call.get("function")
        if isinstance(function, dict):
            args = function.get("arguments")
            if args is not None and not isinstance(args, str):
                function["arguments"] = _encoder.encode(args).decode()
            function.pop("description", None)


def _fix_choices(data: dict[str, Any], *, stream: bool) -> None:
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise invalid_response("no `choices` in the upstream answer")
    for choice in choices:
        if not isinstance(choice, dict):
            raise invalid_response("a choice is not an object")
        reason = choice.get("finish_reason")
        if reason in _FINISH:
            choice["finish_reason"] = _FINISH[reason]
        message = choice.get("delta" if stream else "message")
        if isinstance(message, dict):
            _fix_tool_calls(message.get("tool_calls"))
            if message.get("tool_calls") and choice.get("finish_reason") == "stop":
                choice["finish_reason"] = "tool_calls"


def decode(body: bytes) -> dict[str, Any]:
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise invalid_response(f"not a JSON object: {exc}") from None


def rewrite(data: dict[str, Any], *, model: str, id: str, created: int, stream: bool) -> bytes:
    """An upstream answer or chunk, as the client must see it."""
    if "error" in data and "choices" not in data:
        raise stream_error(data)
    data["model"] = model
    data["id"] = id
    data["created"] = created
    # A string in OpenAI's schema: some upstreams send null, which strict clients reject.
    if "system_fingerprint" in data and data["system_fingerprint"] is None:
        del data["system_fingerprint"]
    _fix_choices(data, stream=stream)
    return _encoder.encode(data)


def chat_as_completion(data: dict[str, Any], *, stream: bool) -> None:
    """Turn a chat answer (or chunk) into a legacy completions one, in place."""
    data["object"] = "text_completion"
    for choice in data.get("choices") or []:
        message = choice.pop("delta" if stream else "message", None) or {}
        choice["text"] = message.get("content") or ""
        choice.setdefault("logprobs", None)


def usage_of(data: dict[str, Any]) -> tuple[int, int] | None:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    return None


def stream_error(data: dict[str, Any]) -> UpstreamError:
    error = data.get("error")
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        status = error.get("http_status_code") or error.get("code")
    else:
        message, status = str(error), None
    if isinstance(status, int) and 400 <= status < 500 and status != 429:
        return UpstreamRejectedError(scrub(message))
    return UpstreamError(f"The upstream failed: {scrub(message)}")
