"""Upstream error bodies and transport failures map to the right client-facing error."""

from __future__ import annotations

import inspect
import json
import logging

import httpx
import msgspec
import pytest

from shim import errors
from shim.redact import MAX_MESSAGE, Scrubber
from shim.upstream import failures
from shim.upstream.failures import map_transport_errors, parse_upstream_error
from shim.upstream.transport import ClosedBeforeResponseError
from tests.conftest import app_client
from tests.fake_hf import FakeHF, Reply, Seen

UPSTREAM = [
    # (status, body, expected status, code, reason)
    pytest.param(
        422,
        b'{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 1512. Given: 2","error_type":"validation"}',
        400, "context_length_exceeded", "http_4xx", id="tgi-validation",
    ),
    pytest.param(424, b'{"error":"Request failed during generation: x","error_type":"generation"}', 502, "upstream_error", "http_5xx", id="tgi-generation"),
    pytest.param(429, b'{"error":"Model is overloaded","error_type":"overloaded"}', 429, "upstream_overloaded", "http_4xx", id="tgi-overloaded"),
    pytest.param(503, b'{"error":"Model x is currently loading","estimated_time":20.0}', 503, "model_loading", "loading", id="hf-loading"),
    pytest.param(503, b'{"error":"unhealthy","error_type":"healthcheck"}', 503, "model_loading", "loading", id="tgi-unhealthy"),
    pytest.param(413, b'{"error":"Input validation error: `inputs` must have less than 512 tokens. Given: 600","error_type":"Validation"}', 400, "context_length_exceeded", "http_4xx", id="tei-413-validation"),
    pytest.param(422, b'{"message":"batch size 1025 > maximum allowed batch size 1024","code":422,"type":"Validation"}', 400, None, "http_4xx", id="tei-openai-flat"),
    pytest.param(400, b'{"error":"Input validation error: `inputs` cannot be empty","error_type":"Empty"}', 400, None, "http_4xx", id="tei-empty"),
    pytest.param(424, b'{"error":"Backend error: not an embedding model","error_type":"Backend"}', 502, "upstream_error", "http_5xx", id="tei-backend"),
    pytest.param(422, b"Failed to deserialize the JSON body into the target type: inputs: invalid type", 400, None, "http_4xx", id="axum-text-plain"),
    pytest.param(401, b"", 502, "upstream_auth_failed", "http_4xx", id="bare-401"),
    pytest.param(401, b'{"error":"Invalid credentials in Authorization header"}', 502, "upstream_auth_failed", "http_4xx", id="hf-401"),
    pytest.param(404, b"Not Found", 502, "upstream_not_found", "http_4xx", id="404"),
    pytest.param(400, b'{"error":"The following `model_kwargs` are not used by the model: [\'stop\']"}', 400, None, "http_4xx", id="pipeline-model-kwargs"),
    pytest.param(500, b'{"error":{"message":"boom","type":"server_error"}}', 502, "upstream_error", "http_5xx", id="openai-envelope-500"),
    pytest.param(502, b"<html>bad gateway</html>", 502, "upstream_error", "http_5xx", id="html-502"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "expected", "code", "reason"), UPSTREAM)
def test_parse_upstream_error(
    status: int, body: bytes, expected: int, code: str | None, reason: str
) -> None:
    error = parse_upstream_error(status, body)
    assert (error.status_code, error.code, error.reason) == (expected, code, reason)
    body = json.loads(msgspec.json.encode(error.body()))
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]


def test_loading_keeps_estimated_time_as_retry_after() -> None:
    error = parse_upstream_error(
        503, b'{"error":"Model x is currently loading","estimated_time":20.0}'
    )
    assert error.retry_after == 20.0
    assert parse_upstream_error(429, b"{}", retry_after=7.0).retry_after == 7.0


def test_upstream_messages_are_scrubbed_of_credentials() -> None:
    error = parse_upstream_error(
        400, b'{"error":"bad header Authorization: Bearer hf_abcdefghijklmnop and api_key=sk-123"}'
    )
    message = json.loads(Scrubber().envelope(error))["error"]["message"]
    assert "hf_abcdefghijklmnop" not in message
    assert "sk-123" not in message
    assert "Bearer ***" in message


def test_not_retryable_classes() -> None:
    assert not parse_upstream_error(422, b"{}").retryable
    assert not parse_upstream_error(401, b"").retryable
    assert parse_upstream_error(500, b"").retryable
    assert parse_upstream_error(429, b"").retryable


def _transport_errors() -> list[type[httpx.TransportError]]:
    found = []
    for _, obj in inspect.getmembers(httpx):
        if inspect.isclass(obj) and issubclass(obj, httpx.TransportError):
            found.append(obj)
    return found


@pytest.mark.parametrize("exc_type", _transport_errors(), ids=lambda t: t.__name__)
def test_every_transport_error_is_mapped(exc_type: type[httpx.TransportError]) -> None:
    with pytest.raises(errors.UpstreamError) as info, map_transport_errors("http://u/x"):
        raise exc_type("boom")
    error = info.value
    assert error.status_code in (502, 504)
    if issubclass(exc_type, httpx.TimeoutException):
        assert error.status_code == 504
    if exc_type is httpx.ConnectError:
        assert error.reason == "connect"
        assert "Could not connect to the upstream http://u/x" in error.message


@pytest.mark.parametrize(
    ("exc_type", "status", "reason", "retryable"),
    [
        (httpx.ConnectError, 502, "connect", True),
        (httpx.ConnectTimeout, 504, "connect", True),
        (httpx.ReadTimeout, 504, "timeout", False),
        (httpx.WriteTimeout, 504, "timeout", False),
        (httpx.PoolTimeout, 504, "timeout", False),
        (ClosedBeforeResponseError, 502, "connect", True),
        (httpx.RemoteProtocolError, 502, "stream_aborted", False),
        (httpx.ReadError, 502, "stream_aborted", False),
        (httpx.WriteError, 502, "stream_aborted", False),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_transport_error_kinds(
    exc_type: type[httpx.TransportError], status: int, reason: str, retryable: bool
) -> None:
    error = failures.transport_error(exc_type("boom"), "http://u/x")
    assert (error.status_code, error.reason, error.retryable) == (status, reason, retryable)
    assert "http://u/x" in error.message


def test_error_tree_statuses() -> None:
    expected = {
        errors.InvalidRequestError: 400,
        errors.AuthenticationError: 401,
        errors.ModelNotFoundError: 404,
        errors.MethodNotAllowedError: 405,
        errors.RequestTooLargeError: 413,
        errors.UnsupportedMediaTypeError: 415,
        errors.RateLimitError: 429,
        errors.ClientDisconnectedError: 499,
        errors.UpstreamError: 502,
        errors.UpstreamTimeoutError: 504,
        errors.UpstreamUnavailableError: 503,
    }
    for cls, status in expected.items():
        assert cls.status_code == status


MESSAGES = [
    # (status, body, the message the client sees, in full or in part)
    pytest.param(
        422, b"{\"detail\":\"Unexpected fields in the request: {'top_k'}\"}",
        "Unexpected fields in the request: {'top_k'}", id="fastapi-detail-str",
    ),
    pytest.param(
        422,
        b'{"detail":[{"loc":["body","messages",0,"role"],"msg":"Field required","type":"missing"},'
        b'{"loc":["body","top_k"],"msg":"Extra inputs are not permitted","type":"extra_forbidden"}]}',
        "body.messages.0.role: Field required; body.top_k: Extra inputs are not permitted",
        id="pydantic-detail-list",
    ),
    pytest.param(
        422, b'{"detail":[{"msg":"no location"},{"loc":"odd","msg":"loc not a list"},{"x":1}]}',
        "no location; loc not a list", id="pydantic-detail-odd",
    ),
    pytest.param(
        400, b'{"object":"error","message":"top_k must be -1 or at least 1","type":"BadRequestError","param":null,"code":400}',
        "top_k must be -1 or at least 1", id="vllm-object-error",
    ),
    pytest.param(
        400, b'{"error":{"message":"Unknown parameter: top_k","type":"invalid_request_error","param":"top_k","code":null}}',
        "Unknown parameter: top_k", id="openai-envelope",
    ),
    pytest.param(422, b"Unprocessable: bad field", "Unprocessable: bad field", id="plain-text"),
    pytest.param(400, b"x" * 5000, "x" * MAX_MESSAGE, id="plain-text-bounded"),
    pytest.param(422, b'{"detail": {"a": 1}}', '{"detail": {"a": 1}}', id="detail-object-as-text"),
    pytest.param(422, b"{}", "HTTP 422", id="empty-object"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "message"), MESSAGES)
def test_upstream_message_reaches_the_client(status: int, body: bytes, message: str) -> None:
    error = parse_upstream_error(status, body)
    assert error.status_code == 400
    rendered = json.loads(Scrubber().envelope(error))["error"]["message"]
    assert rendered == message


def test_detail_messages_pass_the_scrubber() -> None:
    body = b'{"detail":[{"loc":["header"],"msg":"bad token hf_abcdefghijklmnop","type":"x"}]}'
    rendered = json.loads(Scrubber().envelope(parse_upstream_error(422, body)))["error"]["message"]
    assert "hf_abcdefghijklmnop" not in rendered
    assert rendered.startswith("header: bad token")


LOG_LEVELS = [
    pytest.param(422, b'{"detail":"Unexpected fields in the request: {\'top_k\'}"}', logging.INFO, id="client-422"),
    pytest.param(400, b'{"error":"Input validation error: too long"}', logging.INFO, id="context-400"),
    pytest.param(500, b'{"error":"boom"}', logging.WARNING, id="server-500"),
    pytest.param(401, b"", logging.WARNING, id="auth-401-is-shims-setup"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "level"), LOG_LEVELS)
async def test_upstream_failures_are_logged_by_whose_fault(
    fake: FakeHF, caplog: pytest.LogCaptureFixture, status: int, body: bytes, level: int
) -> None:
    fake.script("/tgi/generate", Reply(status, body=body))
    async with app_client(fake) as client:
        r = await client.post(
            "/v1/chat/completions",
            json={"model": "tgi", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert r.status_code >= 400
    [record] = [r for r in caplog.records if "upstream error" in r.getMessage()]
    assert record.levelno == level


async def test_transport_failures_stay_warnings(
    fake: FakeHF, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(seen: Seen) -> Reply:
        raise httpx.ConnectError("connection refused")

    fake.script("/tgi/generate", refuse)
    async with app_client(fake) as client:
        r = await client.post(
            "/v1/chat/completions",
            json={"model": "tgi", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert r.status_code == 502
    [record] = [r for r in caplog.records if "upstream error" in r.getMessage()]
    assert record.levelno == logging.WARNING
