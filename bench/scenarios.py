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
#: Which shim process serves a scenario: the default config (SQLite response store), or the
#: same config with ``[state] backend = "redis"`` on the redis-server the benchmark starts.
ShimConfig = Literal["default", "redis"]

SYSTEM = "You are a helpful assistant."
USER = "Say hello to the benchmark."
# The chatml rendering of the two messages above: what shim sends TGI as `inputs`.
CHATML_PROMPT = (
    f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{USER}<|im_end|>\n"
    "<|im_start|>assistant\n"
)
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
# A Responses request with a string `input` and no `instructions` is one user message, so the
# prompt has no system turn (shim maps it onto chat as huggingface/responses.js does).
RESPONSES_PROMPT = f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n"
RERANK_QUERY = "Which animal jumps over the dog?"
# Within the fake's /info max_client_batch_size (32): one TEI call per request.
RERANK_DOCUMENTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A cat sleeps on the windowsill all afternoon.",
    "Foxes are small omnivorous mammals of the dog family.",
    "The benchmark measures requests per second.",
    "Dogs bark at foxes that cross the garden at night.",
    "A lazy afternoon is good for reading.",
    "Jumping spiders can leap many times their body length.",
    "The brown dog did not move when the fox jumped.",
]
EMBED_TEXT = "The quick brown fox jumps over the lazy dog, benchmarked."
FANOUT_INPUTS = 256
BATCH = 32


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _tgi_body(tokens: int, prompt: str = CHATML_PROMPT) -> bytes:
    parameters = {
        "max_new_tokens": tokens,
        "do_sample": True,
        "stop": ["<|im_end|>"],
        "return_full_text": False,
        "details": True,
    }
    return _json({"inputs": prompt, "parameters": parameters})


def _chat_body(model: str, tokens: int, *, stream: bool = False) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": tokens}
    if stream:
        body["stream"] = True
    return _json(body)


def responses_body(tokens: int, *, stream: bool = False) -> bytes:
    """``POST /v1/responses`` (openai-python ``ResponseCreateParams``), stored like a client's
    default (``store`` defaults to true): every request writes the response to shim's store."""
    body: dict[str, Any] = {
        "model": "tgi-chat",
        "input": USER,
        "max_output_tokens": tokens,
        "store": True,
    }
    if stream:
        body["stream"] = True
    return _json(body)


def _rerank_body() -> bytes:
    return _json({"model": "rerank", "query": RERANK_QUERY, "documents": RERANK_DOCUMENTS})


def _tei_rerank_body() -> bytes:
    # What shim sends TEI (shim.hf.RerankRequest): scores normalised, no texts echoed back.
    body = {
        "query": RERANK_QUERY,
        "texts": RERANK_DOCUMENTS,
        "raw_scores": False,
        "return_text": False,
    }
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
    # An SSE stream (tokens per second are reported).
    stream: bool = False
    # The shim process it runs on (the Redis one is a second process; not run on LiteLLM).
    config: ShimConfig = "default"
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
            stream=True,
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
            stream=True,
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
        *_responses_scenarios(),
        Scenario(
            id="rerank_c32",
            title=f"rerank, {len(RERANK_DOCUMENTS)} documents, c=32",
            kind="wrk",
            connections=32,
            path="/v1/rerank",
            body=_rerank_body(),
            model="rerank",
            endpoint="rerank",
            direct=Direct("fast", "/rerank", _tei_rerank_body()),
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


def _responses_scenarios() -> list[Scenario]:
    """``/v1/responses`` on tgi-chat, stored: judged against ``chat_c32`` of the same run."""
    direct = Direct("fast", "/generate", _tgi_body(16, RESPONSES_PROMPT))
    common: dict[str, Any] = {
        "kind": "wrk",
        "connections": 32,
        "path": "/v1/responses",
        "model": "tgi-chat",
        "endpoint": "responses",
    }
    return [
        Scenario(
            id="responses_c32",
            title="Responses, non-stream, c=32, SQLite store",
            body=responses_body(16),
            direct=direct,
            tokens=16,
            repeat=3,
            **common,
        ),
        Scenario(
            id="responses_redis_c32",
            title="Responses, non-stream, c=32, Redis store",
            body=responses_body(16),
            direct=direct,
            tokens=16,
            repeat=3,
            config="redis",
            **common,
        ),
        Scenario(
            id="responses_stream_c32",
            title="Responses stream, 64 tokens, c=32, SQLite store",
            body=responses_body(64, stream=True),
            direct=Direct("fast", "/generate_stream", _tgi_body(64, RESPONSES_PROMPT)),
            tokens=64,
            stream=True,
            **common,
        ),
    ]
