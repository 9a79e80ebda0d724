"""Adversarial cases: hostile upstreams, malformed input, malformed answers. Through the real
app; the upstream is the fake (``tests/fake_hf.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry

from shim import errors
from shim.app import create_app, reload_config
from shim.config import load_config
from shim.openai import chat, completions, embeddings
from shim.redact import MAX_MESSAGE, SCAN_LIMIT, Scrubber, secrets_of
from tests.conftest import FAKE, app_client, make_config
from tests.fake_hf import FakeHF, Reply, Seen, sse, tgi_stream_events

Client = AsyncTestClient[Litestar]
USER = [{"role": "user", "content": "Hi"}]

# --- upstream text, malformed input and answers ---------------------------------------------

SECRET_HF = "hf_SECRET_upstream_token_1234"
MODEL_TOKEN = "tok.model-credential/9f8e7d"  # no hf_ prefix: only the literal match finds it
CLIENT_KEY = "client-key-alpha-55"
TEAM_KEY = "team-key-beta-66"
URL_PASSWORD = "pw-in-url-77"
SECRETS = (SECRET_HF, MODEL_TOKEN, CLIENT_KEY, TEAM_KEY, URL_PASSWORD)
# What a hostile upstream echoes: every secret, bare and as a header.
ECHO = f"denied: Authorization: Bearer {SECRET_HF}; saw {MODEL_TOKEN} {CLIENT_KEY} {TEAM_KEY} {URL_PASSWORD}"

SECURE_SERVER = f"""api_keys = ["{CLIENT_KEY}"]
[[server.keys]]
key = "{TEAM_KEY}"
name = "team"
"""
SECURE_MODELS = f"""
[huggingface]
token = "{SECRET_HF}"
base_url = "{FAKE}"
hub_url = "{FAKE}/hub"

[models.tgi]
task = "text-generation"
url = "{FAKE}/tgi"
chat_template = "chatml"
retries = 0
wait_for_model = 0

[models.pipe]
task = "text-generation"
url = "{FAKE}/pipe"
protocol = "pipeline"
chat_template = "zephyr"
retries = 0

[models.t5]
task = "text2text-generation"
hf_model = "google/flan-t5-small"
retries = 0

[models.router]
task = "text-generation"
hf_model = "meta-llama/Llama-3.1-8B-Instruct"
retries = 0

[models.vllm]
task = "text-generation"
url = "http://user:{URL_PASSWORD}@fake-hf.test/vllm/v1"
protocol = "openai"
hf_model = "served-name"
token = "{MODEL_TOKEN}"
retries = 0

[models.tei]
task = "feature-extraction"
url = "{FAKE}/tei"
retries = 0

[models.emb-pipe]
task = "feature-extraction"
url = "{FAKE}/pipeline/feature-extraction"
protocol = "pipeline"
dimensions = true
retries = 0

[models.emb-openai]
task = "feature-extraction"
url = "{FAKE}/oai"
protocol = "openai"
hf_model = "served-embedder"
retries = 0
"""
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}


def secure_config(server: str = "") -> Any:
    # Plain keys before the [[server.keys]] table they would otherwise land in.
    return make_config(SECURE_MODELS, server=f"{server}\n{SECURE_SERVER}")


@pytest.fixture
async def client(fake: FakeHF) -> AsyncIterator[Client]:
    async with app_client(fake, secure_config()) as c:
        c.headers.update(AUTH)
        yield c


def events(text: str) -> list[Any]:
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def error_events(text: str) -> list[dict[str, Any]]:
    return [e["error"] for e in events(text) if e != "[DONE]" and "error" in e]


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + "\n".join(str(r.args) for r in caplog.records)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


# --- one scrubber for every upstream text (to clients and logs) ------------------------------


def _connect_error(seen: Seen) -> Reply:
    raise httpx.ConnectError(f"connect failed: {ECHO}")


def _first_then(error: Any) -> list[bytes]:
    return sse(tgi_stream_events(["a"])[0], error, space=False)


CHAT = "/v1/chat/completions"
LEAKS = [
    # (model, stream, fake path, reply, status)
    pytest.param("tgi", True, "/tgi/generate_stream", Reply(chunks=sse({"error": ECHO, "error_type": "generation"}, space=False)), 502, id="tgi-event-before-first-byte"),
    pytest.param("tgi", True, "/tgi/generate_stream", Reply(chunks=sse({"error": ECHO, "error_type": "validation"}, space=False)), 400, id="tgi-event-rejected"),
    pytest.param("tgi", True, "/tgi/generate_stream", Reply(chunks=_first_then({"error": ECHO, "error_type": "generation"})), 200, id="tgi-event-after-first-byte"),
    pytest.param("vllm", True, "/vllm/v1/chat/completions", Reply(chunks=sse({"error": {"message": ECHO, "http_status_code": 500}})), 502, id="openai-event-before-first-byte"),
    pytest.param("vllm", True, "/vllm/v1/chat/completions", Reply(chunks=sse({"choices": [{"index": 0, "delta": {"content": "a"}}]}, {"error": {"message": ECHO}})), 200, id="openai-event-after-first-byte"),
    pytest.param("vllm", False, "/vllm/v1/chat/completions", Reply(json={"error": {"message": ECHO}}), 502, id="openai-error-in-a-200"),
    pytest.param("vllm", True, "/vllm/v1/chat/completions", Reply(chunks=sse({"choices": [{"index": 0, "delta": {"content": "a"}}]}, {"choices": [], "error": ECHO})), 200, id="openai-error-beside-choices"),
    pytest.param("tgi", False, "/tgi/generate", Reply(500, json={"error": ECHO}), 502, id="error-body-5xx"),
    pytest.param("tgi", False, "/tgi/generate", Reply(422, body=ECHO.encode()), 400, id="error-body-422-text"),
    pytest.param("vllm", False, "/vllm/v1/chat/completions", Reply(429, json={"error": {"message": ECHO}}), 429, id="error-body-openai-429"),
    pytest.param("tgi", True, "/tgi/generate_stream", Reply(chunks=_first_then(tgi_stream_events(["b"])[0]), drop=True, drop_error=ECHO), 200, id="transport-failure-mid-stream"),
    pytest.param("tgi", False, "/tgi/generate", _connect_error, 502, id="transport-failure-connect"),
]  # fmt: skip


@pytest.mark.parametrize("log_bodies", [False, True], ids=["log_bodies-off", "log_bodies-on"])
@pytest.mark.parametrize(("model", "stream", "path", "reply", "status"), LEAKS)
async def test_no_secret_reaches_a_client_or_a_log(
    fake: FakeHF,
    caplog: pytest.LogCaptureFixture,
    log_bodies: bool,
    model: str,
    stream: bool,
    path: str,
    reply: Any,
    status: int,
) -> None:
    fake.script(path, reply)
    config = secure_config(f"log_bodies = {str(log_bodies).lower()}")
    async with app_client(fake, config) as client:
        r = await client.post(
            CHAT, json={"model": model, "messages": USER, "stream": stream}, headers=AUTH
        )
    assert r.status_code == status, r.text
    message = error_events(r.text)[0]["message"] if status == 200 else r.json()["error"]["message"]
    assert "***" in message  # the message is passed on, scrubbed
    text = r.text + logged(caplog)
    for secret in SECRETS:
        assert secret not in text
    assert "upstream_token_1234" not in text  # nothing of the hf_ token, `_` and all


SCRUBBED = [
    # (text, what must go, what must stay)
    pytest.param(f"bad token {SECRET_HF}.", SECRET_HF, "bad token ***.", id="configured-hf-token"),
    pytest.param("token hf_OTHER_token_with_underscores-and-dashes ok", "hf_OTHER", "token *** ok", id="hf-pattern-underscores"),
    pytest.param(f"saw {MODEL_TOKEN} bare", MODEL_TOKEN, "saw *** bare", id="configured-token-bare"),
    pytest.param(f"key {CLIENT_KEY}", CLIENT_KEY, "key ***", id="api-keys"),
    pytest.param(f"key {TEAM_KEY}", TEAM_KEY, "key ***", id="server-keys"),
    pytest.param(f"url http://user:{URL_PASSWORD}@host/", URL_PASSWORD, "url http://***@host/", id="url-userinfo"),
    pytest.param("Authorization: Bearer abc.def-123 then", "abc.def", "Authorization: Bearer *** then", id="bearer"),
    pytest.param("use sk-proj-0123456789abcdef now", "sk-proj", "use *** now", id="sk-key"),
    pytest.param('{"api_key": "k-999", "x": 1}', "k-999", '{"api_key": "***', id="api-key-json"),
    pytest.param("API-KEY: zzz-1", "zzz-1", "API-KEY: ***", id="api-key-header"),
    pytest.param("no secrets in a task-list of hf_ things", "", "no secrets in a task-list of hf_ things", id="innocent-text-kept"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "gone", "kept"), SCRUBBED)
def test_the_scrubber_removes_secrets_and_token_like_text(text: str, gone: str, kept: str) -> None:
    config = secure_config()
    scrubbed = Scrubber.for_config(config)(text)
    if gone:
        assert gone not in scrubbed
    assert kept in scrubbed


def test_the_scrubber_knows_every_configured_secret() -> None:
    found = set(secrets_of(secure_config()))
    assert set(SECRETS) <= found
    assert f"user:{URL_PASSWORD}" in found


def test_longest_secret_first_and_the_bounds() -> None:
    scrub = Scrubber(["abc123", "abc123xyz"])
    assert scrub("x abc123xyz y") == "x *** y"
    assert len(scrub("a" * 10 * MAX_MESSAGE)) == MAX_MESSAGE


@pytest.mark.parametrize("offset", [-5, -1, 0, 1], ids=lambda o: f"offset{o}")
def test_a_secret_cut_by_the_scan_limit_does_not_leak_its_start(offset: int) -> None:
    secret = "Zq9-" + "s" * 40
    # Masking shortens what comes before, so a cut secret's start would land in the message.
    text = "hf_" + "a" * (SCAN_LIMIT - 60 + offset) + " " + secret + " tail"
    scrubbed = Scrubber([secret])(text)
    assert "Zq9" not in scrubbed


async def test_a_reload_rebuilds_the_scrubber(fake: FakeHF, tmp_path: Any) -> None:
    path = tmp_path / "c.toml"
    models = f'[models.tgi]\ntask = "text-generation"\nurl = "{FAKE}/tgi"\nchat_template = "chatml"\nretries = 0\n'
    path.write_text(f'[huggingface]\ntoken = "old-token-0001"\n{models}')
    app = create_app(load_config(path), transport=fake.transport(), registry=CollectorRegistry())
    async with AsyncTestClient(app=app) as client:
        path.write_text(f'[huggingface]\ntoken = "new-token-0002"\n{models}')
        assert reload_config(app.state.shim)
        fake.script(
            "/tgi/generate", Reply(500, json={"error": "saw new-token-0002 old-token-0001"})
        )
        r = await client.post(CHAT, json={"model": "tgi", "messages": USER})
    assert r.status_code == 502
    assert "new-token" not in r.text and "old-token" not in r.text  # in-flight ones use the old


# --- with log_bodies = false no log line carries request text --------------------------------

PROMPT = "my very private prompt 4711"


def _echo_prompt(seen: Seen) -> Reply:
    return Reply(422, json={"error": f"Input validation error: `{seen.json()['inputs']}` is too long", "error_type": "validation"})  # fmt: skip


def _echo_prompt_mid_stream(seen: Seen) -> Reply:
    return Reply(chunks=_first_then({"error": f"failed on {seen.json()['inputs']}", "error_type": "generation"}))  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["error-body", "stream-event"])
@pytest.mark.parametrize("log_bodies", [False, True], ids=["log_bodies-off", "log_bodies-on"])
async def test_upstream_messages_echoing_the_prompt_are_logged_only_with_log_bodies(
    fake: FakeHF, caplog: pytest.LogCaptureFixture, log_bodies: bool, stream: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    path = "/tgi/generate_stream" if stream else "/tgi/generate"
    fake.script(path, _echo_prompt_mid_stream if stream else _echo_prompt)
    config = secure_config(f"log_bodies = {str(log_bodies).lower()}")
    async with app_client(fake, config) as client:
        body = {"model": "tgi", "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        r = await client.post(CHAT, json=body, headers=AUTH)
    assert PROMPT in r.text  # the client still gets the upstream's (scrubbed) message
    failures = [m for m in caplog.messages if "code=" in m]
    assert len(failures) == 1
    assert "reason=" in failures[0] and "status=" in failures[0]
    assert (PROMPT in logged(caplog)) is log_bodies


# --- deeply nested JSON: 400 for requests, 502 for answers ----------------------------------


def _deep(depth: int = 1000) -> str:
    return "[" * depth + "]" * depth


DEEP_REQUESTS = [
    pytest.param(CHAT, {"model": "tgi", "messages": USER, "x_unknown": "DEEP"}, id="chat-unknown-field"),
    pytest.param(CHAT, {"model": "vllm", "messages": USER, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"p": "DEEP"}}}]}, id="chat-tools"),
    pytest.param(CHAT, {"model": "tgi", "messages": [{"role": "user", "content": "DEEP"}]}, id="chat-content"),
    pytest.param("/v1/completions", {"model": "vllm", "prompt": "DEEP"}, id="completions-prompt"),
    pytest.param("/v1/embeddings", {"model": "tei", "input": "hi", "x_unknown": "DEEP"}, id="embeddings-unknown-field"),
]  # fmt: skip


@pytest.mark.parametrize(("route", "body"), DEEP_REQUESTS)
async def test_a_deeply_nested_request_is_a_400(
    client: Client, route: str, body: dict[str, Any]
) -> None:
    content = json.dumps(body).replace('"DEEP"', _deep()).encode()
    assert len(content) < 2500
    r = await client.post(route, content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error" and r.headers["x-request-id"]


BOUNDARY = [
    # Depths the decoder reads but encoding the upstream payload again, deeper in the stack,
    # cannot: found by the property test.
    pytest.param(CHAT, '{"model":"vllm","messages":[{"role":"user","content":"hi"}],"x":DEEP}', id="openai-forwarded-field"),
    pytest.param(CHAT, '{"model":"tgi","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"schema":DEEP}}}', id="tgi-grammar"),
    pytest.param("/v1/completions", '{"model":"router","prompt":"hi","x":DEEP}', id="completions-as-chat"),
]  # fmt: skip


@pytest.mark.parametrize(("route", "template"), BOUNDARY)
async def test_nesting_near_the_decoders_limit_is_never_a_500(
    client: Client, route: str, template: str
) -> None:
    for depth in range(900, 1010, 3):
        content = template.replace("DEEP", '{"a":' * depth + "1" + "}" * depth).encode()
        r = await client.post(route, content=content, headers={"content-type": "application/json"})
        assert r.status_code in (200, 400), (depth, r.text)


DEEP_ANSWERS = [
    # (route, model, stream, fake path, reply)
    pytest.param(CHAT, "tgi", False, "/tgi/generate", Reply(body=f'{{"generated_text":"x","x":{_deep()}}}'.encode()), id="tgi-body"),
    pytest.param(CHAT, "tgi", True, "/tgi/generate_stream", Reply(chunks=[b"data:" + _deep().encode() + b"\n\n"]), id="tgi-first-event"),
    pytest.param(CHAT, "pipe", False, "/pipe", Reply(body=_deep().encode()), id="pipeline-body"),
    pytest.param(CHAT, "vllm", False, "/vllm/v1/chat/completions", Reply(body=f'{{"choices":{_deep()}}}'.encode()), id="openai-body"),
    pytest.param(CHAT, "vllm", True, "/vllm/v1/chat/completions", Reply(chunks=[f'data: {{"choices":{_deep()}}}\n\n'.encode()]), id="openai-first-chunk"),
    pytest.param("/v1/embeddings", "tei", False, "/tei/embed", Reply(body=_deep().encode()), id="tei-body"),
    pytest.param("/v1/embeddings", "emb-openai", False, "/oai/v1/embeddings", Reply(body=f'{{"data":{_deep()}}}'.encode()), id="openai-embeddings-body"),
    pytest.param("/v1/embeddings", "emb-pipe", False, "/pipeline/feature-extraction", Reply(body=_deep().encode()), id="pipeline-embeddings-body"),
]  # fmt: skip


@pytest.mark.parametrize(("route", "model", "stream", "path", "reply"), DEEP_ANSWERS)
async def test_a_deeply_nested_answer_is_a_502(
    client: Client, fake: FakeHF, route: str, model: str, stream: bool, path: str, reply: Reply
) -> None:
    fake.script(path, reply)
    body: dict[str, Any] = {"model": model, "stream": stream}
    body.update({"input": "hi"} if route.endswith("embeddings") else {"messages": USER})
    r = await client.post(route, json=body)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_invalid_response"


async def test_a_deeply_nested_event_mid_stream_is_one_error_event(
    client: Client, fake: FakeHF
) -> None:
    fake.script("/tgi/generate_stream", Reply(chunks=[*_first_then(json.loads("[]")), b"data:" + _deep().encode() + b"\n\n"]))  # fmt: skip
    r = await client.post(CHAT, json={"model": "tgi", "messages": USER, "stream": True})
    assert r.status_code == 200
    (error,) = error_events(r.text)
    assert error["code"] == "upstream_invalid_response"


async def test_a_deeply_nested_error_body_is_still_an_upstream_error(
    client: Client, fake: FakeHF
) -> None:
    fake.script("/tgi/generate", Reply(500, body=f'{{"error":{{"message":{_deep()}}}}}'.encode()))
    r = await client.post(CHAT, json={"model": "tgi", "messages": USER})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"


# --- Retry-After, read defensively ----------------------------------------------------------

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC).timestamp()
RETRY_AFTER = [
    pytest.param("7", 7.0, id="seconds"),
    pytest.param(" 2.5 ", 2.5, id="fraction"),
    pytest.param("0", 0.0, id="zero"),
    pytest.param("inf", None, id="inf"),
    pytest.param("1e400", None, id="overflowing"),
    pytest.param("nan", None, id="nan"),
    pytest.param("-5", None, id="negative"),
    pytest.param("99999999999", errors.RETRY_AFTER_MAX, id="huge-clamped"),
    pytest.param("Tue, 01 Dec 2026 12:00:30 GMT", 30.0, id="http-date"),
    pytest.param("Tue, 01 Dec 2026 11:00:00 GMT", 0.0, id="http-date-past"),
    pytest.param("Fri, 01 Dec 9999 12:00:00 GMT", errors.RETRY_AFTER_MAX, id="http-date-far"),
    pytest.param("Tue, 01 Dec 2026 12:00:30", 30.0, id="http-date-no-zone"),
    pytest.param("soon", None, id="garbage"),
    pytest.param("", None, id="empty"),
]  # fmt: skip


@pytest.mark.parametrize(("header", "expected"), RETRY_AFTER)
def test_retry_after_is_read_defensively(header: str, expected: float | None) -> None:
    assert errors.retry_after_seconds(header, now=NOW) == expected


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    "header", ["inf", "1e400", "nan", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "x"]
)
async def test_any_retry_after_is_an_enveloped_answer(
    client: Client, fake: FakeHF, status: int, header: str
) -> None:
    fake.script(
        "/tgi/generate", Reply(status, json={"error": "busy"}, headers={"retry-after": header})
    )
    r = await client.post(CHAT, json={"model": "tgi", "messages": USER})
    assert r.status_code == status, r.text
    assert r.headers["x-request-id"] and set(r.json()["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }
    after = r.headers.get("retry-after")  # none when the upstream's was unreadable (429)
    assert after is not None or status == 429
    assert after is None or 1 <= int(after) <= errors.RETRY_AFTER_MAX


# --- answers missing (or mistyping) their fields --------------------------------------------

EMB = "/v1/embeddings"
INVALID_ANSWERS = [
    # (route, model, stream, fake path, reply)
    pytest.param(CHAT, "tgi", False, "/tgi/generate", Reply(json={"details": None}), id="tgi-no-generated_text"),
    pytest.param(CHAT, "tgi", False, "/tgi/generate", Reply(json={"generated_text": 5}), id="tgi-generated_text-int"),
    pytest.param(CHAT, "tgi", False, "/tgi/generate", Reply(json={"generated_text": "x", "details": {"generated_tokens": -3}}), id="tgi-negative-count"),
    pytest.param(CHAT, "tgi", True, "/tgi/generate_stream", Reply(chunks=sse({"index": 1}, space=False)), id="tgi-event-no-token"),
    pytest.param(CHAT, "tgi", True, "/tgi/generate_stream", Reply(chunks=sse({"token": {"id": 1}}, space=False)), id="tgi-event-token-no-text"),
    pytest.param(CHAT, "pipe", False, "/pipe", Reply(json=[{}]), id="pipeline-no-generated_text"),
    pytest.param(CHAT, "pipe", False, "/pipe", Reply(json=[{"generated_text": None}]), id="pipeline-null"),
    pytest.param(CHAT, "vllm", False, "/vllm/v1/chat/completions", Reply(json={"choices": [{"index": 0, "finish_reason": "stop"}]}), id="chat-no-message"),
    pytest.param(CHAT, "vllm", False, "/vllm/v1/chat/completions", Reply(json={"choices": [{"index": 0, "message": {"content": 5}}]}), id="chat-content-int"),
    pytest.param(CHAT, "vllm", False, "/vllm/v1/chat/completions", Reply(json={"choices": [{"index": "0", "message": {"content": "x"}}]}), id="chat-index-str"),
    pytest.param(CHAT, "vllm", False, "/vllm/v1/chat/completions", Reply(json={"choices": [{"message": {"content": "x", "tool_calls": {"id": 1}}}]}), id="chat-tool-calls-object"),
    pytest.param(CHAT, "vllm", False, "/vllm/v1/chat/completions", Reply(json={"id": "x"}), id="chat-no-choices"),
    pytest.param(CHAT, "vllm", True, "/vllm/v1/chat/completions", Reply(chunks=sse({"choices": [{"index": 0, "delta": "x"}]})), id="chat-chunk-delta-str"),
    pytest.param(CHAT, "vllm", True, "/vllm/v1/chat/completions", Reply(chunks=sse({"choices": [{"index": 0, "finish_reason": 1, "delta": {}}]})), id="chat-chunk-finish-int"),
    pytest.param("/v1/completions", "vllm", False, "/vllm/v1/completions", Reply(json={"choices": [{"index": 0, "finish_reason": "stop"}]}), id="completion-no-text"),
    pytest.param("/v1/completions", "router", False, "/v1/chat/completions", Reply(json={"choices": [{"index": 0, "text": "x"}]}), id="router-chat-as-completion-no-message"),
    pytest.param(EMB, "tei", False, "/tei/embed", Reply(json=[[]]), id="tei-empty-vector"),
    pytest.param(EMB, "tei", False, "/tei/embed", Reply(json=[[1.0, "x"]]), id="tei-string-in-vector"),
    pytest.param(EMB, "tei", False, "/tei/embed", Reply(json=[{}]), id="tei-object"),
    pytest.param(EMB, "emb-openai", False, "/oai/v1/embeddings", Reply(json={"data": [{"index": 0}]}), id="openai-no-embedding"),
    pytest.param(EMB, "emb-openai", False, "/oai/v1/embeddings", Reply(json={"data": [{"index": 0, "embedding": [None]}]}), id="openai-null-in-vector"),
    pytest.param(EMB, "emb-pipe", False, "/pipeline/feature-extraction", Reply(json=[[1.0, 2.0], [3.0, "x"]]), id="pipeline-string-late"),
    pytest.param(EMB, "emb-pipe", False, "/pipeline/feature-extraction", Reply(json=[[1.0, 2.0], [3.0]]), id="pipeline-ragged-tokens"),
]  # fmt: skip


@pytest.mark.parametrize(("route", "model", "stream", "path", "reply"), INVALID_ANSWERS)
async def test_an_answer_missing_its_fields_is_a_502_counted_once(
    fake: FakeHF, route: str, model: str, stream: bool, path: str, reply: Reply
) -> None:
    fake.script(path, reply)
    registry = CollectorRegistry()
    body: dict[str, Any] = {"model": model, "stream": stream}
    body.update({"input": "hi"} if route == EMB else {"messages": USER, "prompt": "hi"})
    async with app_client(fake, secure_config(), registry) as client:
        r = await client.post(route, json=body, headers=AUTH)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_invalid_response"
    labels = {"model": model, "reason": "invalid_response"}
    assert value(registry, "shim_upstream_errors_total", **labels) == 1


@pytest.mark.parametrize(
    ("model", "path", "chunks"),
    [
        pytest.param("tgi", "/tgi/generate_stream", _first_then({"index": 2}), id="tgi"),
        pytest.param("vllm", "/vllm/v1/chat/completions", sse({"choices": [{"index": 0, "delta": {"content": "a"}}]}, {"choices": [{"index": 0}]}), id="openai"),
    ],
)  # fmt: skip
async def test_an_invalid_event_mid_stream_is_one_error_event_counted_once(
    fake: FakeHF, model: str, path: str, chunks: list[bytes]
) -> None:
    fake.script(path, Reply(chunks=chunks))
    registry = CollectorRegistry()
    async with app_client(fake, secure_config(), registry) as client:
        body = {"model": model, "messages": USER, "stream": True}
        r = await client.post(CHAT, json=body, headers=AUTH)
    assert r.status_code == 200
    (error,) = error_events(r.text)
    assert error["code"] == "upstream_invalid_response" and r.text.endswith("data: [DONE]\n\n")
    labels = {"model": model, "reason": "invalid_response"}
    assert value(registry, "shim_upstream_errors_total", **labels) == 1


async def test_a_non_json_answer_counts_as_invalid_response(fake: FakeHF) -> None:
    fake.script("/tgi/generate", Reply(body=b"<html>oops</html>"))
    registry = CollectorRegistry()
    async with app_client(fake, secure_config(), registry) as client:
        r = await client.post(CHAT, json={"model": "tgi", "messages": USER}, headers=AUTH)
    assert r.status_code == 502
    labels = {"model": "tgi", "reason": "invalid_response"}
    assert value(registry, "shim_upstream_errors_total", **labels) == 1


async def test_an_invalid_answer_is_not_an_endpoint_success(fake: FakeHF) -> None:
    models = SECURE_MODELS.replace("wait_for_model = 0", "wait_for_model = 0\ncooldown_after = 2")
    fake.script(
        "/tgi/generate",
        Reply(500, json={"error": "boom"}),
        Reply(json={"nothing": True}),
        Reply(500, json={"error": "boom"}),
    )
    async with app_client(fake, make_config(models, server=SECURE_SERVER)) as client:
        for _ in range(3):
            r = await client.post(CHAT, json={"model": "tgi", "messages": USER}, headers=AUTH)
            assert r.status_code == 502
        (endpoint,) = client.app.state.shim.router.routes["tgi"].endpoints
    # The garbage answer between the two failures did not reset the count: the endpoint rests.
    assert endpoint.failures == 2 and endpoint.cooled_until > 0


@pytest.mark.parametrize("count", [-5, 10**400, True], ids=["negative", "huge", "bool"])
async def test_implausible_usage_from_an_upstream_is_ignored(fake: FakeHF, count: int) -> None:
    # Both used to fail after the answer was sent: the token counter refuses negative
    # increments and cannot convert a 400-digit int to a float.
    usage = f'{{"prompt_tokens": {json.dumps(count)}, "completion_tokens": 1}}'
    answer = (
        '{"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}], "usage": '
        + usage
        + "}"
    )
    fake.script("/vllm/v1/chat/completions", Reply(body=answer.encode()))
    registry = CollectorRegistry()
    async with app_client(fake, secure_config(), registry) as client:
        r = await client.post(CHAT, json={"model": "vllm", "messages": USER}, headers=AUTH)
    assert r.status_code == 200
    labels = {"model": "vllm", "endpoint": "chat", "status": "200"}
    assert value(registry, "shim_requests_total", **labels) == 1
    assert value(registry, "shim_tokens_total", model="vllm", kind="prompt") == 0  # ignored


COUNT_HEADERS = [
    pytest.param("12", 12, id="digits"),
    pytest.param("\u00b2", None, id="superscript-two"),
    pytest.param("9" * 5000, None, id="5000-digits"),
    pytest.param("-1", None, id="negative"),
    pytest.param("1e3", None, id="exponent"),
]  # fmt: skip


@pytest.mark.parametrize(("header", "expected"), COUNT_HEADERS)
async def test_token_count_headers_are_read_defensively(
    client: Client, fake: FakeHF, header: str, expected: int | None
) -> None:
    answer = Reply(json={"generated_text": "hi"}, headers={"x-prompt-tokens": header})
    fake.script("/tgi/generate", answer)
    fake.script("/tei/embed", Reply(json=[[1.0, 0.0]], headers={"x-compute-tokens": header}))
    r = await client.post(CHAT, json={"model": "tgi", "messages": USER})
    assert r.status_code == 200, r.text
    prompt_tokens = r.json()["usage"]["prompt_tokens"]
    assert prompt_tokens == expected if expected is not None else prompt_tokens < 100
    r = await client.post(EMB, json={"model": "tei", "input": "hi"})
    assert r.status_code == 200, r.text
    assert (r.json()["usage"]["prompt_tokens"] == 12) is (expected == 12)


# --- no input, however malformed, gives a 5xx (property test) --------------------------------

ROUTES = {
    "/v1/chat/completions": chat.ChatCompletionRequest,
    "/v1/completions": completions.CompletionRequest,
    "/v1/embeddings": embeddings.EmbeddingRequest,
}
MODEL_NAMES = ["tgi", "pipe", "t5", "router", "vllm", "tei", "emb-pipe", "emb-openai", "nope"]
# Known fields inside known fields, beyond the top level ones (``__struct_fields__``).
NESTED = {
    "/v1/chat/completions": [
        ("messages", 0, "role"), ("messages", 0, "content"), ("messages", 0, "name"),
        ("messages", 0, "content", 0), ("messages", 0, "content", 0, "type"),
        ("messages", 0, "content", 0, "text"), ("messages", 0, "tool_calls"),
        ("messages", 0, "tool_calls", 0, "function"), ("messages", 0, "tool_calls", 0, "id"),
        ("messages", 0, "tool_call_id"), ("messages", 1), ("stream_options", "include_usage"),
        ("response_format", "type"), ("response_format", "json_schema"),
        ("response_format", "json_schema", "schema"), ("tools", 0, "function"),
        ("tools", 0, "function", "parameters"), ("stop", 0),
    ],
    "/v1/completions": [("prompt", 0), ("prompt", 0, 0), ("stream_options", "include_usage")],
    "/v1/embeddings": [("input", 0), ("input", 0, 0)],
}  # fmt: skip
BASES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "Hi"}]},
    "/v1/completions": {"prompt": "Hi", "max_tokens": 5},
    "/v1/embeddings": {"input": "Hi"},
}
_DEEP = "\x00deep\x00"

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)


def _deep_text(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "dict":
        return '{"a":' * depth + "1" + "}" * depth
    return '[{"a":' * (depth // 2) + "0" + "}]" * (depth // 2)


def _set(body: Any, path: tuple[Any, ...], new: Any) -> None:
    """Set ``path`` in ``body`` when its parents exist (creating the last container)."""
    target = body
    for i, key in enumerate(path[:-1]):
        following = path[i + 1]
        if isinstance(target, dict):
            if not isinstance(target.get(key), dict | list):
                target[key] = [] if isinstance(following, int) else {}
            target = target[key]
        elif isinstance(target, list) and isinstance(key, int):
            while len(target) <= key:
                target.append([] if isinstance(following, int) else {})
            target = target[key]
        else:
            return
    last = path[-1]
    if isinstance(target, dict):
        target[last] = new
    elif isinstance(target, list) and isinstance(last, int):
        while len(target) <= last:
            target.append(None)
        target[last] = new


@st.composite
def bodies(draw: st.DrawFn, route: str) -> bytes:
    kind = draw(st.sampled_from(["mutated"] * 3 + ["deep"] * 2 + ["wide", "raw", "json"]))
    if kind == "raw":
        raw = draw(st.binary(max_size=200))
        return draw(st.sampled_from([raw, b'{"model": "tgi", "messages": "\xff\xfe' + raw]))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    body = json.loads(json.dumps(BASES[route]))
    body["model"] = draw(st.sampled_from(MODEL_NAMES))
    paths = [(f,) for f in ROUTES[route].__struct_fields__] + NESTED[route] + [("x_unknown",)]
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        if kind == "deep":
            new: Any = _DEEP
        elif kind == "wide":
            item = draw(st.sampled_from(['"x"', "1", '{"role": "user", "content": "x"}', "[1]"]))
            # Copies (not one shared object): a later mutation changes one element only.
            new = [json.loads(item) for _ in range(draw(st.integers(100, 3000)))]
        else:
            new = draw(JSON)
        _set(body, path, new)
    text = json.dumps(body)
    if kind == "deep":
        # Around the decoder's limit (Python's recursion limit, ~1,000), and far past it.
        depth = draw(st.sampled_from([900, 980, 1000, 1100, 3000]) | st.integers(500, 5000))
        deep = _deep_text(depth, draw(st.sampled_from(["list", "dict", "mixed"])))
        text = text.replace(json.dumps(_DEEP), deep)
    return text.encode()


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers.get("x-request-id")
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    elif response.headers["content-type"].startswith("text/event-stream"):
        assert response.text.endswith("data: [DONE]\n\n")
        assert not error_events(response.text), response.text[-300:]


@pytest.mark.parametrize("route", list(ROUTES))
def test_no_input_gives_a_5xx(route: str) -> None:
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    try:
        client = loop.run_until_complete(
            stack.enter_async_context(app_client(FakeHF(), secure_config()))
        )

        @settings(
            max_examples=200,
            deadline=5000,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(body=bodies(route))
        def check(body: bytes) -> None:
            post = client.post(
                route, content=body, headers={**AUTH, "content-type": "application/json"}
            )
            _check(loop.run_until_complete(asyncio.wait_for(post, 10)))

        check()
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


# --- no upstream answer, however malformed, gives a 500 (property test) ----------------------

_TOKEN = {"id": 1, "text": "h", "logprob": -0.1, "special": False}
_CHUNK = {"id": "", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "a"}, "logprobs": None, "finish_reason": None}]}  # fmt: skip
_LAST = {**_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}  # fmt: skip
_CHAT = {"id": "", "choices": [{"index": 0, "message": {"role": "assistant", "content": "x", "tool_calls": [{"id": 1, "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}  # fmt: skip
_GENERATED = {"generated_text": "hi", "details": {"finish_reason": "eos_token", "generated_tokens": 2, "prefill": [], "tokens": [_TOKEN], "top_tokens": [[_TOKEN]]}}  # fmt: skip
# (route, request, fake path, streamed, a good answer to mutate)
ANSWERS: list[tuple[str, dict[str, Any], str, bool, Any]] = [
    (CHAT, {"model": "tgi", "messages": USER, "logprobs": True, "top_logprobs": 1}, "/tgi/generate", False, _GENERATED),
    (CHAT, {"model": "tgi", "messages": USER, "stream": True, "logprobs": True, "stream_options": {"include_usage": True}}, "/tgi/generate_stream", True, tgi_stream_events(["a", "b"])),
    (CHAT, {"model": "pipe", "messages": USER}, "/pipe", False, [{"generated_text": "x"}]),
    (CHAT, {"model": "vllm", "messages": USER}, "/vllm/v1/chat/completions", False, _CHAT),
    (CHAT, {"model": "vllm", "messages": USER, "stream": True}, "/vllm/v1/chat/completions", True, [_CHUNK, _LAST]),
    ("/v1/completions", {"model": "vllm", "prompt": "x"}, "/vllm/v1/completions", False, {"choices": [{"index": 0, "text": "x", "finish_reason": "stop"}]}),
    ("/v1/completions", {"model": "router", "prompt": "x", "stream": True}, "/v1/chat/completions", True, [_CHUNK, _LAST]),
    ("/v1/completions", {"model": "router", "prompt": "x"}, "/v1/chat/completions", False, _CHAT),
    (EMB, {"model": "tei", "input": ["a", "b"]}, "/tei/embed", False, [[1.0, 0.0], [0.0, 1.0]]),
    (EMB, {"model": "tei", "input": ["a", "b"], "encoding_format": "base64"}, "/tei/embed", False, [[1.0, 0.0], [0.0, 1.0]]),
    (EMB, {"model": "emb-openai", "input": "a"}, "/oai/v1/embeddings", False, {"data": [{"index": 0, "embedding": "AACAPw=="}], "usage": {"prompt_tokens": 1}}),
    (EMB, {"model": "emb-openai", "input": "a", "encoding_format": "base64"}, "/oai/v1/embeddings", False, {"data": [{"index": 0, "embedding": [1.0, 2.0]}]}),
    (EMB, {"model": "emb-pipe", "input": "a", "dimensions": 1}, "/pipeline/feature-extraction", False, [[[1.0, 2.0], [3.0, 4.0]]]),
    (EMB, {"model": "emb-pipe", "input": ["a", "b"]}, "/pipeline/feature-extraction", False, [[[[1.0, 2.0]]], [[[3.0, 4.0]]]]),
]  # fmt: skip
ODD = st.sampled_from([-1, 10**30, "", "\u00b2", [], {}, None, True, 1e308])


def _places(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()  # fmt: skip
    for key, inner in items:
        yield from _places(inner, (*at, key))


@st.composite
def answers(draw: st.DrawFn) -> tuple[int, Any]:
    case = draw(st.integers(0, len(ANSWERS) - 1))
    answer = json.loads(json.dumps(ANSWERS[case][4]))
    for _ in range(draw(st.integers(1, 3))):
        place = draw(st.sampled_from(list(_places(answer))))
        new = draw(JSON | ODD)
        if not place:
            answer = new
            continue
        target = answer
        for key in place[:-1]:
            target = target[key]
        target[place[-1]] = new
    return case, answer


def test_no_upstream_answer_gives_a_500() -> None:
    fake = FakeHF()
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    try:
        client = loop.run_until_complete(
            stack.enter_async_context(app_client(fake, secure_config()))
        )

        @settings(max_examples=300, deadline=5000, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
        @given(drawn=answers())
        def check(drawn: tuple[int, Any]) -> None:
            case, answer = drawn
            route, body, path, streamed, _ = ANSWERS[case]
            events = answer if isinstance(answer, list) else [answer]
            reply = (
                Reply(chunks=sse(*events, space=False))
                if streamed
                else Reply(body=json.dumps(answer).encode())
            )
            fake.script(path, reply)
            post = client.post(route, json=body, headers=AUTH)
            response = loop.run_until_complete(asyncio.wait_for(post, 10))
            assert not fake.pending(path)  # the answer was asked for (and is not left queued)
            assert response.status_code != 500, response.text[:300]
            assert response.headers.get("x-request-id")
            if response.status_code >= 400:
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}
            elif not streamed:
                response.json()
            else:
                assert response.text.endswith("data: [DONE]\n\n")

        check()
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
