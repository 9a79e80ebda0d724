"""A fake Hugging Face upstream serving the real wire formats (PROTOCOLS.md), scriptable.

One object serves both ways: ``fake.transport()`` is an ``httpx.MockTransport`` for the app
under test, and ``fake.asgi`` is an ASGI app for a real local server (``serve_asgi``), used with
real clients (the openai SDK) and for fault injection that needs real sockets.

Default answers by path: TGI ``/generate`` and ``/generate_stream``, the pipeline ``POST /`` (and
``/hf-inference/models/...``; text-ranking when ``inputs`` are ``[query, text]`` pairs or
``{"query", "texts"}``), OpenAI ``/v1/chat/completions``, ``/v1/completions`` and vLLM's
``/v1/rerank``, TEI ``/embed``, ``/rerank``, ``/info``, ``/health``. ``fake.script(path, reply,
...)`` queues replies for a path.
With ``fake.model = ToolModel(...)`` (``tests/fake_model.py``) the generation answers depend on
the prompt (tool calls, tool results, TGI grammars) as a tool-calling model's would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fake_model import ModelError, ToolModel, tokens, vllm_chat, vllm_chat_events

TOKENS = ["Hello", " from", " TGI", "!"]
DIM = 8


@dataclass
class Reply:
    status: int = 200
    body: bytes | None = None
    json: Any = None
    # SSE events or raw chunks, streamed in order; ``delay`` seconds between them.
    chunks: list[bytes] | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    # Stop answering (a hung upstream) for this long before replying.
    hang: float = 0.0
    # Drop the connection after the chunks (no clean end), with this transport error message.
    drop: bool = False
    drop_error: str = "connection dropped"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def sse(*events: Any, space: bool = True, done: bool = False) -> list[bytes]:
    sep = b"data: " if space else b"data:"
    out = [sep + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events]
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


def tgi_stream_events(tokens: Iterable[str] = TOKENS, *, finish: str = "eos_token") -> list[Any]:
    tokens = list(tokens)
    events: list[Any] = []
    for i, text in enumerate(tokens):
        event: dict[str, Any] = {
            "index": i + 1,
            "token": {"id": i, "text": text, "logprob": -0.5, "special": False},
            "generated_text": None,
            "details": None,
        }
        events.append(event)
    events.append(
        {
            "index": len(tokens) + 1,
            "token": {"id": 2, "text": "</s>", "logprob": -0.1, "special": True},
            "generated_text": "".join(tokens),
            "details": {
                "finish_reason": finish,
                "generated_tokens": len(tokens) + 1,
                "seed": None,
                "input_length": 7,
            },
        }
    )
    return events


def vector(text: str, dim: int = DIM) -> list[float]:
    """A deterministic, text-dependent unit vector."""
    raw = [math.sin(len(text) * (i + 1) + sum(map(ord, text)) % 97) for i in range(dim)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def b64_vector(text: str, dim: int = DIM) -> str:
    values = vector(text, dim)
    return base64.b64encode(struct.pack(f"<{dim}f", *values)).decode()


#: TEI's ``max_client_batch_size`` as the fake's ``/info`` reports it (and ``/rerank`` enforces).
MAX_CLIENT_BATCH = 4


def relevance(query: str, text: str) -> float:
    """A deterministic cross-encoder stand-in (a logit): query words found in the text, minus
    one, plus a small length-dependent part so that ties are rare."""
    words = set(query.lower().split())
    found = sum(1 for w in set(text.lower().split()) if w in words)
    return found - 1.0 + 1.0 / (len(text) + 2)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _ranks(query: str, texts: list[str], *, raw: bool) -> list[dict[str, Any]]:
    scores = [relevance(query, t) if raw else sigmoid(relevance(query, t)) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: -scores[i])
    return [{"index": i, "score": scores[i]} for i in order]


async def read_asgi_request(scope: Any, receive: Any, send: Any) -> bytes | None:
    """For a fake's ASGI app: answer the lifespan (None), or read an HTTP request's body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return None
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class FakeHF:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._scripts: dict[str, deque[Reply | Callable[[Seen], Reply]]] = defaultdict(deque)
        self.tokens = list(TOKENS)
        # When set, generation answers come from this model instead of ``tokens``.
        self.model: ToolModel | None = None
        self.open_streams = 0
        self.closed_early = 0
        # Requests whose client (shim) went away while the fake was still working on them.
        self.disconnected = 0

    # --- control ---------------------------------------------------------------------------

    def script(self, path: str, *replies: Reply | Callable[[Seen], Reply]) -> None:
        self._scripts[path].extend(replies)

    def pending(self, path: str) -> int:
        """Scripted replies for ``path`` not served yet."""
        return len(self._scripts.get(path, ()))

    def requests(self, path: str | None = None) -> list[Seen]:
        return [s for s in self.seen if path is None or s.path == path]

    # --- behaviour ---------------------------------------------------------------------------

    def reply(self, seen: Seen) -> Reply:
        queue = self._scripts.get(seen.path)
        if queue:
            scripted = queue.popleft()
            return scripted(seen) if callable(scripted) else scripted
        return self.default(seen)

    def default(self, seen: Seen) -> Reply:
        path = seen.path
        if seen.method == "GET":
            if path.endswith("/health"):
                return Reply(body=b"")
            if path.endswith("/info"):
                return Reply(json={"model_id": "fake", "max_client_batch_size": MAX_CLIENT_BATCH})
            return Reply(404, body=b"Not Found")
        try:
            body = seen.json() if seen.body else {}
        except (ValueError, RecursionError):
            # As TGI's axum answers a body it cannot read: plain text, 422.
            return Reply(422, body=b"Failed to parse the request body as JSON")
        if path.endswith(("/chat/completions", "/completions")):
            return self._openai(body, path.endswith("/chat/completions"))
        if path.endswith(("/embed", "/rerank", "/embeddings", "/pipeline/feature-extraction")):
            return self._embed(path, body)
        ranking = self._pipeline_ranking(body.get("inputs"))
        if ranking is not None:
            return ranking
        tgi = path.endswith(("/generate", "/generate_stream"))
        try:
            answer = self._generate(body, tgi=tgi)
        except ModelError as exc:
            if not tgi:  # the toolkit answers every failure with 400 {"error"}
                return Reply(400, json={"error": str(exc)})
            error = f"Input validation error: {exc}"
            return Reply(422, json={"error": error, "error_type": "validation"})
        text = "".join(answer)
        if path.endswith("/generate_stream"):
            return Reply(chunks=sse(*tgi_stream_events(answer), space=False))
        if path.endswith("/generate"):
            params = body.get("parameters", {})
            details = {
                "finish_reason": "eos_token",
                "generated_tokens": len(answer),
                "seed": None,
                "prefill": [],
                "tokens": [
                    {"id": i, "text": t, "logprob": -0.5, "special": False}
                    for i, t in enumerate(answer)
                ],
            }
            if params.get("top_n_tokens"):
                details["top_tokens"] = [
                    [{"id": i, "text": t, "logprob": -0.5, "special": False}]
                    for i, t in enumerate(answer)
                ]
            return Reply(
                json={"generated_text": text, "details": details},
                headers={"x-prompt-tokens": "7", "x-generated-tokens": str(len(answer))},
            )
        return self._pipeline(seen, body, text)

    def _generate(self, body: dict[str, Any], *, tgi: bool) -> list[str]:
        """The answer's tokens: ``tokens``, or the model's answer to the prompt (pipelines have
        no grammar: theirs is the 400 for an unknown parameter)."""
        if self.model is None:
            return self.tokens
        prompt = body.get("inputs", "")
        grammar = (body.get("parameters") or {}).get("grammar") if tgi else None
        return tokens(self.model.complete(prompt if isinstance(prompt, str) else "", grammar))

    def _embed(self, path: str, body: dict[str, Any]) -> Reply:
        if path.endswith("/embed"):
            inputs = body["inputs"]
            items = (
                [inputs]
                if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int))
                else inputs
            )
            return Reply(json=[vector(str(i)) for i in items])
        if path.endswith("/rerank"):
            return self._rerank(body)
        if path.endswith("/embeddings"):
            inputs = body["input"]
            items = [inputs] if isinstance(inputs, str) else inputs
            as_base64 = body.get("encoding_format") == "base64"  # as TEI's OpenAI route does
            return Reply(
                json={
                    "object": "list",
                    "data": [
                        {
                            "object": "embedding",
                            "index": i,
                            "embedding": b64_vector(str(x)) if as_base64 else vector(str(x)),
                        }
                        for i, x in enumerate(items)
                    ],
                    "model": body.get("model"),
                    "usage": {"prompt_tokens": 3 * len(items), "total_tokens": 3 * len(items)},
                }
            )
        if path.endswith("/pipeline/feature-extraction"):
            inputs = body["inputs"]
            if isinstance(inputs, str):
                return Reply(json=[[vector(inputs + str(t)) for t in range(3)]])
            return Reply(json=[[[vector(s + str(t)) for t in range(3)]] for s in inputs])
        raise AssertionError(path)

    def _pipeline(self, seen: Seen, body: dict[str, Any], text: str) -> Reply:
        """The pipeline (toolkit / hf-inference): [{"generated_text"}], never streams."""
        params = body.get("parameters", {})
        unknown = set(params) - {
            "max_new_tokens", "do_sample", "temperature", "top_p", "top_k",
            "repetition_penalty", "return_full_text",
        }  # fmt: skip
        if unknown:
            return Reply(
                400,
                json={
                    "error": f"The following `model_kwargs` are not used by the model: {sorted(unknown)}"
                },
            )
        if seen.headers.get("content-type") != "application/json":
            return Reply(400, json={"error": "Content type must be application/json"})
        prefix = (
            body["inputs"]
            if params.get("return_full_text", True) and "return_full_text" in params
            else ""
        )
        return Reply(json=[{"generated_text": prefix + text}])

    def _rerank(self, body: dict[str, Any]) -> Reply:
        """TEI's ``/rerank`` (``texts``) or vLLM's ``/v1/rerank`` (``documents``)."""
        query = body["query"]
        if "documents" in body:
            documents = body["documents"]
            ranks = _ranks(query, documents, raw=False)[: body.get("top_n") or None]
            results = [
                {"index": r["index"], "relevance_score": r["score"]}
                | (
                    {"document": {"text": documents[r["index"]]}}
                    if body.get("return_documents", True)
                    else {}
                )
                for r in ranks
            ]
            tokens = sum(len((query + " " + d).split()) for d in documents)
            return Reply(
                json={
                    "id": "rerank-fake",
                    "model": body.get("model"),
                    "usage": {"total_tokens": tokens},
                    "results": results,
                }
            )
        texts = body["texts"]
        if not texts:
            return Reply(400, json={"error": "`texts` cannot be empty", "error_type": "Empty"})
        if len(texts) > MAX_CLIENT_BATCH:
            message = f"batch size {len(texts)} > maximum allowed batch size {MAX_CLIENT_BATCH}"
            return Reply(422, json={"error": message, "error_type": "Validation"})
        ranks = _ranks(query, texts, raw=bool(body.get("raw_scores")))
        if body.get("return_text"):
            ranks = [r | {"text": texts[r["index"]]} for r in ranks]
        tokens = sum(len((query + " " + t).split()) + 3 for t in texts)
        return Reply(json=ranks, headers={"x-compute-tokens": str(tokens)})

    def _pipeline_ranking(self, inputs: Any) -> Reply | None:
        """The toolkit's text-ranking task (sentence-transformers ``CrossEncoder``, scores as
        the model's logits): pairs → ``{"scores"}`` in order; ``{"query", "texts"}`` → ranks."""
        if isinstance(inputs, dict) and "query" in inputs:
            ranks = _ranks(inputs["query"], inputs["texts"], raw=True)
            return Reply(json=ranks)
        pairs = isinstance(inputs, list) and inputs and isinstance(inputs[0], list)
        if not pairs:
            return None
        return Reply(json={"scores": [relevance(q, t) for q, t in inputs]})

    def _openai(self, body: dict[str, Any], chat: bool) -> Reply:
        if chat and self.model is not None:
            try:
                if body.get("stream"):
                    return Reply(chunks=sse(*vllm_chat_events(body, self.model), done=True))
                return Reply(json=vllm_chat(body, self.model))
            except ModelError as exc:  # vLLM's 400 for a request it cannot serve
                return Reply(400, json={"object": "error", "message": str(exc),
                                        "type": "BadRequestError", "code": 400})  # fmt: skip
        text = "".join(self.tokens)
        base = {"id": "", "created": 1, "model": body.get("model"), "system_fingerprint": "fake"}
        if not body.get("stream"):
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": text},
                          "logprobs": None, "finish_reason": "stop"}  # fmt: skip
            else:
                choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
            return Reply(
                json={
                    **base,
                    "object": "chat.completion" if chat else "text_completion",
                    "choices": [choice],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
                }
            )
        events = []
        for i, token in enumerate(self.tokens):
            last = i == len(self.tokens) - 1
            if chat:
                choice = {"index": 0, "delta": {"role": "assistant", "content": token},
                          "logprobs": None, "finish_reason": "stop" if last else None}  # fmt: skip
            else:
                choice = {"index": 0, "text": token, "logprobs": None,
                          "finish_reason": "stop" if last else ""}  # fmt: skip
            events.append(
                {**base, "object": "chat.completion.chunk", "choices": [choice], "usage": None}
            )
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(
                {
                    **base,
                    "choices": [],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
                }
            )
        return Reply(chunks=sse(*events, done=True))

    # --- serving -----------------------------------------------------------------------------

    async def _stream(self, reply: Reply) -> AsyncIterator[bytes]:
        self.open_streams += 1
        finished = False
        try:
            for chunk in reply.chunks or []:
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                yield chunk
            finished = True
            if reply.drop:
                raise httpx.ReadError(reply.drop_error)
        finally:
            self.open_streams -= 1
            if not finished:
                self.closed_early += 1

    async def handle(self, request: httpx.Request) -> httpx.Response:
        seen = Seen(request.method, request.url.path, dict(request.headers), await request.aread())
        self.seen.append(seen)
        reply = self.reply(seen)
        if reply.hang:
            await asyncio.sleep(reply.hang)
        # As bytes: a real server may send any latin-1 header value (httpx encodes str as ASCII).
        headers = {k: v.encode("latin-1") for k, v in reply.headers.items()}
        if reply.chunks is not None:
            headers.setdefault("content-type", b"text/event-stream")
            return httpx.Response(reply.status, headers=headers, content=self._stream(reply))
        if reply.json is not None:
            return httpx.Response(reply.status, headers=headers, json=reply.json)
        return httpx.Response(reply.status, headers=headers, content=reply.body or b"")

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        """The same behaviour over a real socket (``serve_asgi``)."""
        body = await read_asgi_request(scope, receive, send)
        if body is None:
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        seen = Seen(scope["method"], scope["path"], headers, body)
        self.seen.append(seen)
        reply = self.reply(seen)
        if reply.hang:
            try:
                message = await asyncio.wait_for(receive(), reply.hang)
            except TimeoutError:
                message = {}
            if message.get("type") == "http.disconnect":
                self.disconnected += 1
                return
        out_headers = [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        if reply.chunks is not None:
            out_headers.append((b"content-type", b"text/event-stream"))
            await send(
                {"type": "http.response.start", "status": reply.status, "headers": out_headers}
            )
            self.open_streams += 1
            finished = False
            listener = asyncio.ensure_future(receive())
            try:
                for chunk in reply.chunks:
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    # uvicorn drops writes to a closed connection silently: watch receive().
                    if listener.done():
                        return
                finished = True
                if reply.drop:
                    raise ConnectionResetError("drop")
                await send({"type": "http.response.body", "body": b""})
            finally:
                listener.cancel()
                self.open_streams -= 1
                if not finished:
                    self.closed_early += 1
            return
        payload = json.dumps(reply.json).encode() if reply.json is not None else (reply.body or b"")
        out_headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": reply.status, "headers": out_headers})
        await send({"type": "http.response.body", "body": payload})
