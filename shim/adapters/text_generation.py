"""text-generation on TGI (``/generate``, ``/generate_stream``) and on the inference-toolkit
pipeline (``POST /`` with ``{"inputs", "parameters"}``). Pure: no I/O, clock or logging.

PROTOCOLS.md §1 (TGI), §9 (the mapping table), §11 (pipeline rules).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from shim import hf
from shim.adapters._params import GenerationParams, sampling
from shim.adapters._result import Generation, StreamDelta, TokenInfo
from shim.config import Protocol, Task
from shim.errors import (
    InvalidRequestError,
    UpstreamError,
    UpstreamOverloadedError,
    UpstreamRejectedError,
    decode_answer,
    invalid_response,
)

# TGI's finish reasons → OpenAI's. Unknown values read as "stop" (never fail on a new value).
FINISH_REASONS = {"length": "length", "eos_token": "stop", "stop_sequence": "stop", "stop": "stop"}
# TGI accepts at most 4 stop sequences by default (launcher --max-stop-sequences).
TGI_MAX_STOP = 4
# TGI serves at most 5 top tokens by default (--max-top-n-tokens).
TGI_MAX_TOP_N = 5
# Pipelines stop at 20 tokens (prompt included) without max_new_tokens; shim always sends one.
PIPELINE_DEFAULT_MAX_TOKENS = 256

_response = msgspec.json.Decoder(hf.GenerateResponse | list[hf.GenerateResponse])
# A list input gives nested lists: [[{generated_text}], ...] (PROTOCOLS.md §11).
_pipeline_response = msgspec.json.Decoder(
    hf.GenerateResponse | list[hf.GenerateResponse | list[hf.GenerateResponse]]
)
_event = msgspec.json.Decoder(hf.StreamResponse)


def finish_reason(raw: str | None) -> str:
    return FINISH_REASONS.get(raw or "", "stop")


def strip_echo(text: str, prompt: str) -> str:
    """Remove a prompt the backend echoed despite return_full_text=false."""
    return text[len(prompt) :] if prompt and text.startswith(prompt) else text


def _token_info(token: hf.Token, top: Sequence[hf.Token] | None) -> TokenInfo:
    alternatives = tuple((t.text, t.logprob or 0.0) for t in top or ())
    return TokenInfo(token.text, token.logprob or 0.0, alternatives)


_NO_MARKERS: frozenset[str] = frozenset()


class TGI:
    """TGI's native routes. Streams; reports finish reasons and token counts (``details``).

    TGI leaves special tokens' text out of ``generated_text`` and marks them ``special`` in a
    stream, but some are the markup a tool or reasoning parser reads (``[TOOL_CALLS]``,
    ``<|python_tag|>``): those named in ``markers`` are kept (for the parser, never the client).
    """

    path: str = "/generate"
    stream_path: str | None = "/generate_stream"
    reports_finish: bool = True
    #: TGI constrains generation with a JSON ``grammar`` (forced tool calls, JSON mode).
    accepts_grammar: bool = True

    def to_payload(
        self, params: GenerationParams, *, prompt: str, stop: Sequence[str], default_max: int | None
    ) -> hf.GenerateRequest:
        do_sample, temperature, top_p = sampling(params, sample_by_default=True)
        return hf.GenerateRequest(
            inputs=prompt,
            parameters=hf.GenerateParameters(
                max_new_tokens=params.max_tokens or default_max,
                do_sample=do_sample,
                temperature=temperature,
                top_p=top_p,
                top_k=params.top_k,
                repetition_penalty=params.repetition_penalty,
                frequency_penalty=params.frequency_penalty,
                # The rest of the stops (if more than 4) are applied by shim.
                stop=list(stop[:TGI_MAX_STOP]) or None,
                seed=params.seed,
                return_full_text=False,
                details=True,
                top_n_tokens=min(params.top_logprobs, TGI_MAX_TOP_N) or None,
                grammar=params.grammar,
            ),
        )

    def parse_response(
        self,
        body: bytes,
        *,
        prompt: str,
        markers: frozenset[str] = _NO_MARKERS,
        logprobs: bool = False,
    ) -> Generation:
        decoded = decode_answer(_response, body, "TGI /generate")
        if isinstance(decoded, list):
            if not decoded:
                raise invalid_response("TGI returned an empty list")
            decoded = decoded[0]
        details = decoded.details
        tokens = None
        if logprobs and details and details.tokens is not None:
            tops = details.top_tokens or []
            tokens = [
                _token_info(t, tops[i] if i < len(tops) else None)
                for i, t in enumerate(details.tokens)
            ]
        text = decoded.generated_text
        if markers and details and details.tokens:
            text = _with_markers(text, details.tokens, markers)
        return Generation(
            text=strip_echo(text, prompt),
            finish_reason=finish_reason(details.finish_reason if details else None),
            prompt_tokens=len(details.prefill) if details and details.prefill else None,
            completion_tokens=details.generated_tokens if details else None,
            tokens=tokens,
        )

    def parse_event(self, data: bytes, *, markers: frozenset[str] = _NO_MARKERS) -> StreamDelta:
        event = decode_answer(_event, data, "TGI stream event")
        if event.error is not None:
            raise _stream_error(event.error, event.error_type)
        token = event.token
        if token is None:
            raise invalid_response("TGI stream event without `token`")
        delta = StreamDelta()
        if not token.special or token.text in markers:
            delta.text = token.text
            delta.token = _token_info(token, event.top_tokens)
        if event.details is not None:
            delta.finish_reason = finish_reason(event.details.finish_reason)
            delta.completion_tokens = event.details.generated_tokens
            delta.prompt_tokens = event.details.input_length
        elif event.generated_text is not None:
            # Last event of a stream without details.
            delta.finish_reason = "stop"
        return delta


def _with_markers(text: str, tokens: Sequence[hf.Token], markers: frozenset[str]) -> str:
    """The answer with the marker tokens TGI decoded away put back: rebuilt from the tokens'
    texts when one of them is a special marker (else ``text`` as TGI decoded it)."""
    if not any(t.special and t.text in markers for t in tokens):
        return text
    return "".join(t.text for t in tokens if not t.special or t.text in markers)


def _stream_error(message: str, error_type: str | None) -> UpstreamError:
    kind = (error_type or "").lower()
    if kind in ("validation", "template_error", "tool_error", "missing_template_variable"):
        return UpstreamRejectedError(message)
    if kind == "overloaded":  # TGI's queue is full: a 429 to the client, as before the stream
        return UpstreamOverloadedError(f"The upstream is overloaded: {message}")
    return UpstreamError(f"The upstream failed during generation: {message}")


class Pipeline:
    """The HF inference toolkit / serverless hf-inference pipeline. Cannot stream; rejects
    parameters it does not know with 400, so only what it accepts is sent (PROTOCOLS.md §11)."""

    path: str = ""
    stream_path: str | None = None
    # No details: the finish reason is inferred by the caller (stop, or length at the budget).
    reports_finish: bool = False
    accepts_grammar: bool = False

    def __init__(self, *, full_text_flag: bool) -> None:
        self.full_text_flag = full_text_flag

    def to_payload(
        self, params: GenerationParams, *, prompt: str, stop: Sequence[str], default_max: int | None
    ) -> hf.GenerateRequest:
        if params.logprobs:
            raise InvalidRequestError(
                "`logprobs` is not available from a pipeline upstream.", param="logprobs"
            )
        if params.grammar is not None:
            raise InvalidRequestError(
                "`response_format` (JSON mode) needs a TGI or OpenAI-speaking upstream.",
                param="response_format",
            )
        do_sample, temperature, top_p = sampling(params, sample_by_default=False)
        return hf.GenerateRequest(
            inputs=prompt,
            parameters=hf.GenerateParameters(
                max_new_tokens=params.max_tokens or default_max or PIPELINE_DEFAULT_MAX_TOKENS,
                do_sample=do_sample,
                temperature=temperature,
                top_p=top_p,
                top_k=params.top_k,
                repetition_penalty=params.repetition_penalty,
                return_full_text=False if self.full_text_flag else None,
            ),
        )

    def parse_response(
        self,
        body: bytes,
        *,
        prompt: str,
        markers: frozenset[str] = _NO_MARKERS,
        logprobs: bool = False,
    ) -> Generation:
        # A pipeline's text is decoded without special tokens: nothing to put back.
        decoded = decode_answer(_pipeline_response, body, "pipeline output")
        item: object = decoded
        while isinstance(item, list):
            if not item:
                raise invalid_response("the pipeline returned an empty list")
            item = item[0]
        assert isinstance(item, hf.GenerateResponse)
        # No details from a pipeline: the finish reason is decided by the caller (stop / length).
        return Generation(text=strip_echo(item.generated_text, prompt), finish_reason="stop")

    def parse_event(  # pragma: no cover - never streams
        self, data: bytes, *, markers: frozenset[str] = _NO_MARKERS
    ) -> StreamDelta:
        raise NotImplementedError


def for_protocol(task: Task, protocol: Protocol) -> TGI | Pipeline | None:
    """The adapter for a generation model's rendered protocol (None: ``openai`` forwards the
    request as sent), chosen at config load."""
    if protocol == "tgi":
        return TGI()
    if protocol == "pipeline":
        # text-generation pipelines echo the prompt unless told not to; text2text ones reject
        # the flag (and never echo).
        return Pipeline(full_text_flag=task == "text-generation")
    return None
