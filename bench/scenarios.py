"""The scenarios: what each target is sent, at what concurrency, and how it is measured.

Each scenario has the OpenAI request sent to shim and LiteLLM (same model names in both
configs), and the equivalent upstream request sent straight to the fake for the baseline:
the call shim itself makes for that request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["wrk", "streams", "fanout"]
Port = Literal["fast", "paced"]

SYSTEM = "You are a helpful assistant."
USER = "Say hello to the benchmark."
# The chatml rendering of the two messages above: what shim sends TGI as `inputs`.
CHATML_PROMPT = (
    f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{USER}<|im_end|>\n"
    "<|im_start|>assistant\n"
)
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
EMBED_TEXT = "The quick brown fox jumps over the lazy dog, benchmarked."
FANOUT_INPUTS = 256
BATCH = 32


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _tgi_body(tokens: int) -> bytes:
    parameters = {
        "max_new_tokens": tokens,
        "do_sample": True,
        "stop": ["<|im_end|>"],
        "return_full_text": False,
        "details": True,
    }
    return _json({"inputs": CHATML_PROMPT, "parameters": parameters})


def _chat_body(model: str, tokens: int, *, stream: bool = False) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": tokens}
    if stream:
        body["stream"] = True
    return _json(body)


def embed_inputs(count: int) -> list[str]:
    return [f"{EMBED_TEXT} #{i}" for i in range(count)]


@dataclass(frozen=True)
class Direct:
    """The upstream call for the baseline: a path on one of the fake's ports."""

    port: Port
    path: str
    body: bytes


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    kind: Kind
    connections: int
    path: str
    body: bytes
    # shim metric labels of this scenario's requests.
    model: str
    endpoint: str
    direct: Direct | None = None
    # Several direct calls (the fan-out baseline: one per upstream batch).
    direct_batches: tuple[bytes, ...] = ()
    expect_status: int = 200
    # Tokens per answer (streams: to report tokens per second).
    tokens: int = 0
    # Overrides the run's --duration (the stream scenario needs a few full streams).
    duration: float | None = None
    # Measured runs (back to back); the median-throughput one is reported, with the range.
    repeat: int = 1
    # Also measure sequential overhead in interleaved rounds (target vs its direct call).
    interleaved: bool = False
    # The upstream call LiteLLM makes for this request (its baseline for interleaving).
    peer_direct: Direct | None = None
    note: str = ""


def all_scenarios(*, stream_concurrency: int = 1000, stream_tokens: int = 50) -> list[Scenario]:
    fanout_body = _json(
        {"model": "embed", "input": embed_inputs(FANOUT_INPUTS), "encoding_format": "float"}
    )
    batches = tuple(
        _json({"inputs": embed_inputs(FANOUT_INPUTS)[i : i + BATCH]})
        for i in range(0, FANOUT_INPUTS, BATCH)
    )
    return [
        Scenario(
            id="chat_c1",
            title="chat, non-stream, c=1",
            kind="wrk",
            connections=1,
            path="/v1/chat/completions",
            body=_chat_body("tgi-chat", 16),
            model="tgi-chat",
            endpoint="chat",
            direct=Direct("fast", "/generate", _tgi_body(16)),
            tokens=16,
            interleaved=True,
            peer_direct=Direct("fast", "/v1/chat/completions", _chat_body("tgi-chat", 16)),
        ),
        Scenario(
            id="chat_c32",
            title="chat, non-stream, c=32",
            kind="wrk",
            connections=32,
            path="/v1/chat/completions",
            body=_chat_body("tgi-chat", 16),
            model="tgi-chat",
            endpoint="chat",
            direct=Direct("fast", "/generate", _tgi_body(16)),
            tokens=16,
            repeat=3,
        ),
        Scenario(
            id="chat_openai_c32",
            title="chat via OpenAI upstream, c=32",
            kind="wrk",
            connections=32,
            path="/v1/chat/completions",
            body=_chat_body("openai-chat", 16),
            model="openai-chat",
            endpoint="chat",
            direct=Direct("fast", "/v1/chat/completions", _chat_body("openai-chat", 16)),
            tokens=16,
        ),
        Scenario(
            id="stream_c32",
            title="chat stream, 64 tokens, c=32",
            kind="wrk",
            connections=32,
            path="/v1/chat/completions",
            body=_chat_body("tgi-chat", 64, stream=True),
            model="tgi-chat",
            endpoint="chat",
            direct=Direct("fast", "/generate_stream", _tgi_body(64)),
            tokens=64,
        ),
        Scenario(
            id="streams_1000",
            title=f"{stream_concurrency:,} concurrent streams, 20 ms/token",
            kind="streams",
            connections=stream_concurrency,
            path="/v1/chat/completions",
            body=_chat_body("tgi-paced", stream_tokens, stream=True),
            model="tgi-paced",
            endpoint="chat",
            direct=Direct("paced", "/generate_stream", _tgi_body(stream_tokens)),
            tokens=stream_tokens,
            duration=6.0,
        ),
        Scenario(
            id="embed_c32",
            title="embeddings, 1 input, c=32",
            kind="wrk",
            connections=32,
            path="/v1/embeddings",
            body=_json({"model": "embed", "input": EMBED_TEXT, "encoding_format": "float"}),
            model="embed",
            endpoint="embeddings",
            direct=Direct("fast", "/embed", _json({"inputs": [EMBED_TEXT]})),
            repeat=3,
        ),
        Scenario(
            id="embed_256",
            title=f"embeddings, {FANOUT_INPUTS} inputs (8 upstream calls), sequential",
            kind="fanout",
            connections=1,
            path="/v1/embeddings",
            body=fanout_body,
            model="embed",
            endpoint="embeddings",
            direct_batches=batches,
            note="direct = the 8 batch calls sent at once; latency of the slowest",
        ),
        Scenario(
            id="error_404",
            title="unknown model -> 404, c=32",
            kind="wrk",
            connections=32,
            path="/v1/chat/completions",
            body=_chat_body("no-such-model", 16),
            model="unknown",
            endpoint="chat",
            expect_status=404,
        ),
    ]
