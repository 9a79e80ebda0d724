"""A fast fake Hugging Face upstream for the benchmark: TGI, TEI and OpenAI chat on raw
asyncio Protocols (uvloop + httptools), every answer pre-encoded, loopback only.

Run as its own process: ``python -m bench.fake_upstream``. It listens on two ports (chosen by
the OS) and prints them as one JSON line: ``{"fast": P1, "paced": P2}``. The *fast* port streams
all tokens at once; the *paced* port waits ``--token-delay-ms`` before every token (prefill
included), like a real model. Routes (both ports):

    POST /generate             TGI object with details (finish_reason, generated_tokens, tokens)
    POST /generate_stream      TGI SSE (``data:{...}``), final event with details
    POST /embed                TEI: list of float vectors, one per input
    POST /rerank               TEI: ``[{"index", "score"}]`` best first, one per text (422 past
                               ``max_client_batch_size``, as TEI answers)
    POST /v1/embeddings        TEI's OpenAI route
    POST /v1/chat/completions  OpenAI chat, plain or ``"stream": true``
    GET  /info, /health        TEI info (``max_client_batch_size``) and health

The token count is ``max_new_tokens`` (TGI) or ``max_tokens`` (OpenAI) from the body, found
with a regex rather than a JSON decode; answers are cached per count (per input or text count
for TEI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httptools

DEFAULT_TOKENS = 16
MAX_TOKENS = 4096
_MAX_NEW_TOKENS = re.compile(rb'"max_new_tokens"\s*:\s*(\d+)')
_MAX_TOKENS = re.compile(rb'"max_(?:completion_)?tokens"\s*:\s*(\d+)')
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_SSE_HEAD = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"


@dataclass(frozen=True, slots=True)
class Settings:
    dim: int = 384
    # /info's limit, which shim batches by: the embeddings batch of 32 (bench.scenarios.BATCH);
    # the rerank scenario's documents fit in one call, so its direct baseline is that call.
    max_client_batch_size: int = 32
    default_tokens: int = DEFAULT_TOKENS


def _head(status: int, reason: str, headers: bytes, length: int | None) -> bytes:
    framing = (
        b"transfer-encoding: chunked\r\n" if length is None else b"content-length: %d\r\n" % length
    )
    return b"HTTP/1.1 %d %s\r\n%s%s\r\n" % (status, reason.encode(), headers, framing)


_REASONS = {200: "OK", 404: "Not Found", 422: "Unprocessable Entity"}


def _json_response(body: bytes, *, status: int = 200, extra: bytes = b"") -> bytes:
    headers = b"content-type: application/json\r\n" + extra
    reason = _REASONS[status]
    return _head(status, reason, headers, len(body)) + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_LAST_CHUNK = b"0\r\n\r\n"


def _token_text(i: int) -> str:
    return f" t{i % 100}"


def _count(pattern: re.Pattern[bytes], body: bytes, default: int) -> int:
    match = pattern.search(body)
    if match is None:
        return default
    return max(1, min(MAX_TOKENS, int(match.group(1))))


class Answers:
    """Pre-encoded answers, built once per distinct token or input count."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        vector = [math.sin(i + 1.0) / math.sqrt(settings.dim / 2) for i in range(settings.dim)]
        self._vector = json.dumps([round(x, 6) for x in vector], separators=(",", ":")).encode()
        self._cache: dict[tuple[str, int], bytes | list[bytes]] = {}
        info = {
            "model_id": "fake/bench-embedder",
            "max_client_batch_size": settings.max_client_batch_size,
            "max_input_length": 512,
        }
        self.info = _json_response(json.dumps(info).encode())
        self.health = _head(200, "OK", b"", 0)
        self.not_found = _json_response(
            b'{"error":"not found","error_type":"not_found"}', status=404
        )

    def _cached(self, key: tuple[str, int], build: Callable[[int], bytes | list[bytes]]) -> bytes:
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = build(key[1])
        assert isinstance(value, bytes)
        return value

    def _cached_events(
        self, key: tuple[str, int], build: Callable[[int], list[bytes]]
    ) -> list[bytes]:
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = build(key[1])
        assert isinstance(value, list)
        return value

    # --- TGI ---------------------------------------------------------------------------------

    def generate(self, body: bytes) -> bytes:
        n = _count(_MAX_NEW_TOKENS, body, self.settings.default_tokens)
        return self._cached(("generate", n), self._build_generate)

    @staticmethod
    def _build_generate(n: int) -> bytes:
        tokens = [
            {"id": i, "text": _token_text(i), "logprob": -0.5, "special": False} for i in range(n)
        ]
        details = {
            "finish_reason": "eos_token",
            "generated_tokens": n,
            "seed": None,
            "prefill": [],
            "tokens": tokens,
        }
        text = "".join(_token_text(i) for i in range(n))
        body = json.dumps({"generated_text": text, "details": details}, separators=(",", ":"))
        extra = b"x-prompt-tokens: 12\r\nx-generated-tokens: %d\r\n" % n
        return _json_response(body.encode(), extra=extra)

    def tgi_events(self, body: bytes) -> list[bytes]:
        """The chunk-framed events of one ``/generate_stream`` answer, final event last."""
        n = _count(_MAX_NEW_TOKENS, body, self.settings.default_tokens)
        return self._cached_events(("tgi_stream", n), self._build_tgi_events)

    @staticmethod
    def _build_tgi_events(n: int) -> list[bytes]:
        events = []
        for i in range(n):
            last = i == n - 1
            event = {
                "index": i + 1,
                "token": {"id": i, "text": _token_text(i), "logprob": -0.5, "special": False},
                "generated_text": "".join(_token_text(j) for j in range(n)) if last else None,
                "details": (
                    {
                        "finish_reason": "eos_token",
                        "generated_tokens": n,
                        "seed": None,
                        "input_length": 12,
                    }
                    if last
                    else None
                ),
            }
            events.append(
                _chunk(b"data:" + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
            )
        return events

    # --- OpenAI chat -------------------------------------------------------------------------

    def chat(self, body: bytes) -> bytes:
        n = _count(_MAX_TOKENS, body, self.settings.default_tokens)
        return self._cached(("chat", n), self._build_chat)

    @staticmethod
    def _build_chat(n: int) -> bytes:
        text = "".join(_token_text(i) for i in range(n))
        answer = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "fake",
            "system_fingerprint": "fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n},
        }
        return _json_response(json.dumps(answer, separators=(",", ":")).encode())

    def chat_events(self, body: bytes) -> list[bytes]:
        n = _count(_MAX_TOKENS, body, self.settings.default_tokens)
        return self._cached_events(("chat_stream", n), self._build_chat_events)

    @staticmethod
    def _build_chat_events(n: int) -> list[bytes]:
        events = []
        for i in range(n):
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": "fake",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": _token_text(i)}
                        if i == 0
                        else {"content": _token_text(i)},
                        "logprobs": None,
                        "finish_reason": "stop" if i == n - 1 else None,
                    }
                ],
            }
            data = json.dumps(chunk, separators=(",", ":")).encode()
            event = b"data: " + data + b"\n\n"
            if i == n - 1:
                event += b"data: [DONE]\n\n"
            events.append(_chunk(event))
        return events

    # --- TEI ---------------------------------------------------------------------------------

    def embed(self, body: bytes) -> bytes:
        return self._cached(("embed", _input_count(body, b"inputs")), self._build_embed)

    def _build_embed(self, n: int) -> bytes:
        return _json_response(b"[" + b",".join([self._vector] * n) + b"]")

    def openai_embeddings(self, body: bytes) -> bytes:
        return self._cached(("v1_embed", _input_count(body, b"input")), self._build_openai_embed)

    def rerank(self, body: bytes) -> bytes:
        n = _input_count(body, b"texts")
        if n > self.settings.max_client_batch_size:
            return self._cached(("rerank_too_many", n), self._build_batch_error)
        return self._cached(("rerank", n), self._build_rerank)

    @staticmethod
    def _build_rerank(n: int) -> bytes:
        # TEI router/src/http/types.rs `Rank` (index, score; `text` only with return_text),
        # sorted by score, best first. The scores are distinct and not in document order, so
        # the server under test has to put them back in order.
        scores = [round(0.5 + 0.5 * math.sin(2.3 * i + 1.0), 6) for i in range(n)]
        ranks = sorted(range(n), key=lambda i: -scores[i])
        items = ",".join(f'{{"index":{i},"score":{scores[i]}}}' for i in ranks)
        # TEI's usage header (x-compute-tokens): what shim reads for `usage`.
        extra = b"x-compute-tokens: %d\r\n" % (24 * n)
        return _json_response(f"[{items}]".encode(), extra=extra)

    def _build_batch_error(self, n: int) -> bytes:
        # TEI's validation error (422 since TEI PR #818; `error_type` PascalCase).
        limit = self.settings.max_client_batch_size
        error = {
            "error": f"batch size {n} > maximum allowed batch size {limit}",
            "error_type": "Validation",
        }
        return _json_response(json.dumps(error).encode(), status=422)

    def _build_openai_embed(self, n: int) -> bytes:
        items = [
            b'{"object":"embedding","index":%d,"embedding":%s}' % (i, self._vector)
            for i in range(n)
        ]
        body = (
            b'{"object":"list","data":[' + b",".join(items) + b'],"model":"fake/bench-embedder",'
            b'"usage":{"prompt_tokens":%d,"total_tokens":%d}}' % (4 * n, 4 * n)
        )
        return _json_response(body)


def _input_count(body: bytes, field: bytes) -> int:
    """Inputs in a TEI/OpenAI embeddings body: 1 for a string, else the list's length."""
    try:
        decoded = json.loads(body)
        value = decoded[field.decode()]
    except (ValueError, KeyError, TypeError):
        return 1
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return len(value)
    return 1


class Pacer:
    """Timers for paced streams, shared: every stream due in the same millisecond is served by
    one loop timer, so 1,000 streams cost ~50 timers per 20 ms instead of 1,000."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._due: dict[int, list[FakeHTTP]] = {}

    def schedule(self, stream: FakeHTTP) -> None:
        loop = asyncio.get_running_loop()
        tick = math.ceil((loop.time() + self.delay) * 1000)
        waiting = self._due.get(tick)
        if waiting is None:
            waiting = self._due[tick] = []
            loop.call_at(tick / 1000, self._fire, tick)
        waiting.append(stream)

    def _fire(self, tick: int) -> None:
        for stream in self._due.pop(tick, ()):
            stream.send_next()


class FakeHTTP(asyncio.Protocol):
    """One client connection: HTTP/1.1 keep-alive, one request at a time."""

    __slots__ = (
        "_answers",
        "_body",
        "_events",
        "_next",
        "_pacer",
        "_parser",
        "_transport",
        "_url",
    )

    def __init__(self, answers: Answers, pacer: Pacer | None) -> None:
        self._answers = answers
        self._pacer = pacer
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        # The paced stream in progress: its events and the index of the next one.
        self._events: list[bytes] | None = None
        self._next = 0

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._events = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(_head(400, "Bad Request", b"connection: close\r\n", 0))
                self._transport.close()

    # --- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        transport = self._transport
        if transport is None:
            return
        method = self._parser.get_method()
        path = self._url.split(b"?", 1)[0]
        body = b"".join(self._body)
        answers = self._answers
        if method == b"POST":
            if path == b"/generate":
                transport.write(answers.generate(body))
            elif path == b"/generate_stream":
                self._stream(answers.tgi_events(body))
            elif path == b"/v1/chat/completions":
                if _STREAM_TRUE.search(body):
                    self._stream(answers.chat_events(body))
                else:
                    transport.write(answers.chat(body))
            elif path == b"/embed":
                transport.write(answers.embed(body))
            elif path == b"/rerank":
                transport.write(answers.rerank(body))
            elif path in (b"/v1/embeddings", b"/embeddings"):
                transport.write(answers.openai_embeddings(body))
            else:
                transport.write(answers.not_found)
        elif path == b"/info":
            transport.write(answers.info)
        elif path == b"/health":
            transport.write(answers.health)
        else:
            transport.write(answers.not_found)
        if not self._parser.should_keep_alive() and self._events is None:
            transport.close()

    # --- streaming ---------------------------------------------------------------------------

    def _stream(self, events: list[bytes]) -> None:
        transport = self._transport
        assert transport is not None
        head = _head(200, "OK", _SSE_HEAD, None)
        if self._pacer is None:
            transport.write(head + b"".join(events) + _LAST_CHUNK)
            return
        transport.write(head)
        self._events, self._next = events, 0
        self._pacer.schedule(self)

    def send_next(self) -> None:
        """Write the next event of the paced stream (called by the Pacer)."""
        transport, events = self._transport, self._events
        if transport is None or events is None or transport.is_closing():
            return
        index = self._next
        if index == len(events) - 1:
            self._events = None
            transport.write(events[index] + _LAST_CHUNK)
            if not self._parser.should_keep_alive():
                transport.close()
            return
        transport.write(events[index])
        self._next = index + 1
        assert self._pacer is not None
        self._pacer.schedule(self)


async def serve(settings: Settings, *, token_delay: float, host: str = "127.0.0.1") -> None:
    """Listen on two ports (fast, paced), announce them on stdout, serve until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    answers = Answers(settings)
    pacer = Pacer(token_delay) if token_delay > 0 else None
    fast = await loop.create_server(lambda: FakeHTTP(answers, None), host, 0, backlog=4096)
    paced = await loop.create_server(lambda: FakeHTTP(answers, pacer), host, 0, backlog=4096)
    ports = {
        "fast": fast.sockets[0].getsockname()[1],
        "paced": paced.sockets[0].getsockname()[1],
    }
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    fast.close()
    paced.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-delay-ms", type=float, default=20.0, help="paced port's delay")
    parser.add_argument("--dim", type=int, default=384, help="embedding dimensions")
    parser.add_argument("--max-client-batch-size", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help="tokens when unasked")
    args = parser.parse_args(argv)
    settings = Settings(
        dim=args.dim, max_client_batch_size=args.max_client_batch_size, default_tokens=args.tokens
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        print("fake_upstream: uvloop missing, using asyncio's loop", file=sys.stderr)
        asyncio.run(serve(settings, token_delay=args.token_delay_ms / 1000))
    else:
        uvloop.run(serve(settings, token_delay=args.token_delay_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
