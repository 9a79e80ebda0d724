"""The one exception tree, and the mapping of upstream failures onto it.

Every failure a client can see is a ``ShimError``; one exception handler (``shim.app``) renders
each as OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``::

    ShimError (500 server_error)
    ├── InvalidRequestError (400)
    ├── AuthenticationError (401)
    ├── PermissionDeniedError (403)
    ├── NotFoundError (404)
    │   └── ModelNotFoundError (404, model_not_found)
    ├── RequestTooLargeError (413)
    ├── RateLimitError (429, rate_limit_exceeded)
    └── UpstreamError (502; ``reason`` labels the metric)
        ├── UpstreamTimeoutError (504)
        ├── UpstreamUnavailableError (503, model_loading)
        ├── UpstreamOverloadedError (429)
        └── UpstreamRejectedError (400: the upstream refused the request itself)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import httpx
import msgspec

UpstreamReason = Literal[
    "timeout", "connect", "http_4xx", "http_5xx", "loading", "invalid_response", "stream_aborted"
]


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class ShimError(Exception):
    status_code: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after

    def body(self) -> ErrorBody:
        return ErrorBody(ErrorDetail(self.message, self.type, self.param, self.code))

    def headers(self) -> dict[str, str]:
        """Response headers that go with this error (what SDK retry logic reads)."""
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, round(self.retry_after)))}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status_code})"


class InvalidRequestError(ShimError):
    status_code = 400
    type = "invalid_request_error"


class AuthenticationError(ShimError):
    status_code = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "www-authenticate": "Bearer"}


class PermissionDeniedError(ShimError):
    status_code = 403
    type = "invalid_request_error"
    default_code = "model_not_allowed"


class NotFoundError(ShimError):
    status_code = 404
    type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )


class MethodNotAllowedError(ShimError):
    status_code = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        # RFC 9110 15.5.6: a 405 lists the methods the route does support.
        return {**super().headers(), "allow": self.allow}


class RequestTooLargeError(ShimError):
    status_code = 413
    type = "invalid_request_error"
    default_code = "request_too_large"

    def headers(self) -> dict[str, str]:
        # The rest of the body is never read: the connection cannot carry another request.
        return {**super().headers(), "connection": "close"}


class UnsupportedMediaTypeError(ShimError):
    status_code = 415
    type = "invalid_request_error"
    default_code = "unsupported_media_type"


class RateLimitError(ShimError):
    status_code = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamError(ShimError):
    status_code = 502
    type = "server_error"
    default_code: ClassVar[str | None] = "upstream_error"
    default_reason: ClassVar[UpstreamReason] = "http_5xx"
    #: Whether trying again (after a backoff) may succeed.
    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        reason: UpstreamReason | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, retry_after=retry_after)
        self.reason: UpstreamReason = reason or self.default_reason
        if retryable is not None:
            self.retryable = retryable
        # Set when shim already retried it: clients should not multiply the retries.
        self.exhausted = False

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if self.status_code in (502, 504) and (self.exhausted or not self.retryable):
            # shim already retried what can be retried: clients should not multiply it.
            headers["x-should-retry"] = "false"
        return headers


class UpstreamTimeoutError(UpstreamError):
    # Not retried: the upstream may still be generating (and billing) the first attempt.
    status_code = 504
    default_code = "upstream_timeout"
    default_reason = "timeout"
    retryable = False


class UpstreamUnavailableError(UpstreamError):
    status_code = 503
    default_code = "model_loading"
    default_reason = "loading"


class UpstreamOverloadedError(UpstreamError):
    status_code = 429
    type = "rate_limit_error"
    default_code = "upstream_overloaded"
    default_reason = "http_4xx"


class UpstreamRejectedError(UpstreamError):
    status_code = 400
    type = "invalid_request_error"
    default_code = None
    default_reason = "http_4xx"
    retryable = False


# --- upstream bodies -------------------------------------------------------------------------

# Anything that looks like a credential is removed before an upstream message reaches a client.
_SECRET = re.compile(r"(?i)(bearer\s+)\S+|hf_[A-Za-z0-9]{6,}|(api[_-]?key[\"'=: ]+)\S+")
_CONTEXT_LENGTH = re.compile(r"must be <=|must have less than|too long|maximum context length")
_MAX_MESSAGE = 1000


class _UpstreamErrorView(msgspec.Struct):
    """Every error body HF backends send, read tolerantly.

    TGI/TEI/serverless: ``{"error": str, "error_type": str}`` (+ ``estimated_time`` when loading);
    OpenAI-style routes: ``{"error": {"message", ...}}``; TEI ``/v1/embeddings``: flat
    ``{"message", "code", "type"}``.
    """

    error: str | dict[str, Any] | None = None
    error_type: str | None = None
    message: str | None = None
    type: str | None = None
    estimated_time: float | None = None


_error_view = msgspec.json.Decoder(_UpstreamErrorView)


def scrub(text: str) -> str:
    """Remove anything credential-like and bound the length of an upstream message."""
    text = _SECRET.sub(lambda m: (m.group(1) or m.group(2) or "") + "***", text)
    return text[:_MAX_MESSAGE]


def _message_of(body: bytes) -> tuple[str, str | None, float | None]:
    try:
        view = _error_view.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = body.decode("utf-8", "replace").strip()
        return text, None, None
    if isinstance(view.error, dict):
        message = view.error.get("message")
        kind = view.error.get("type")
        return (
            str(message) if message is not None else "",
            str(kind) if kind is not None else None,
            None,
        )
    message = view.error or view.message or ""
    return message, view.error_type or view.type, view.estimated_time


def parse_upstream_error(
    status: int, body: bytes, *, retry_after: str | None = None
) -> UpstreamError:
    """Map an upstream error answer (status, body) onto the client-facing error.

    Pure: tested by a table in ``tests/test_errors.py``.
    """
    message, kind, estimated = _message_of(body)
    message = scrub(message) or f"HTTP {status}"
    lowered = (kind or "").lower()
    after = _retry_after(retry_after, estimated)
    if status == 503 or lowered in ("unhealthy", "healthcheck") or "currently loading" in message:
        return UpstreamUnavailableError(
            f"The upstream model is not ready: {message}",
            retry_after=5.0 if after is None else after,
        )
    if status == 429 or lowered == "overloaded":
        return UpstreamOverloadedError(f"The upstream is overloaded: {message}", retry_after=after)
    if status in (401, 403):
        return UpstreamError(
            f"The upstream refused shim's credentials (HTTP {status}); check the model's token.",
            reason="http_4xx",
            code="upstream_auth_failed",
            retryable=False,
        )
    if status == 404:
        return UpstreamError(
            f"The upstream has no such route or model (HTTP 404): {message}",
            reason="http_4xx",
            code="upstream_not_found",
            retryable=False,
        )
    if status == 408:
        return UpstreamTimeoutError(f"The upstream timed out: {message}", reason="timeout")
    if 400 <= status < 500 and status != 424:
        # (424 is TGI's "generation failed" / TEI's "backend error": a server fault.)
        code = "context_length_exceeded" if _CONTEXT_LENGTH.search(message) else None
        return UpstreamRejectedError(message, code=code)
    return UpstreamError(f"The upstream failed (HTTP {status}): {message}", reason="http_5xx")


def _retry_after(header: str | None, estimated: float | None) -> float | None:
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    return estimated


def invalid_response(what: str) -> UpstreamError:
    return UpstreamError(
        f"The upstream sent an invalid response: {scrub(what)}",
        reason="invalid_response",
        code="upstream_invalid_response",
        retryable=False,
    )


# --- transport errors ------------------------------------------------------------------------


@contextmanager
def map_transport_errors(target: str) -> Iterator[None]:
    """Turn httpx's transport exceptions into client-facing errors (as httpx maps httpcore's).

    ``target`` names the upstream without credentials (scheme, host and path only).
    """
    try:
        yield
    except httpx.TransportError as exc:
        raise transport_error(exc, target) from exc


def transport_error(exc: httpx.TransportError, target: str) -> UpstreamError:
    """The client-facing error for a transport failure (``map_transport_errors`` without the
    context manager, for loops that run per chunk)."""
    if isinstance(exc, httpx.TimeoutException):
        # httpx-aiohttp reports every aiohttp connection error as a ConnectTimeout; the cause
        # tells what really happened.
        cause = _cause_names(exc)
        if "ServerTimeoutError" in cause or "TimeoutError" in cause or not cause:
            return UpstreamTimeoutError(f"The upstream {target} timed out.")
        if "ClientConnectorError" in cause:
            return UpstreamError(
                f"Could not connect to the upstream {target}: {scrub(str(exc.__cause__))}.",
                reason="connect",
                code="upstream_unreachable",
            )
        # Usually a pooled keep-alive connection the server had closed: safe to retry.
        return UpstreamError(f"The upstream {target} closed the connection.", reason="connect")
    if isinstance(exc, httpx.ConnectError):
        return UpstreamError(
            f"Could not connect to the upstream {target}: "
            f"{scrub(str(exc)) or 'connection refused'}.",
            reason="connect",
            code="upstream_unreachable",
        )
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError | httpx.WriteError):
        return UpstreamError(
            f"The connection to the upstream {target} broke: "
            f"{scrub(str(exc)) or type(exc).__name__}.",
            reason="stream_aborted",
            retryable=False,
        )
    return UpstreamError(
        f"The upstream {target} could not be reached: {type(exc).__name__}.",
        reason="connect",
        code="upstream_unreachable",
    )


def _cause_names(exc: BaseException) -> set[str]:
    """Class names in the MRO of the exception's cause (empty when there is none)."""
    cause = exc.__cause__
    return {cls.__name__ for cls in type(cause).__mro__} if cause is not None else set()
