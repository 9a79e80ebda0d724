"""The one exception tree. Every failure a client can see is a ``ShimError``, rendered as
OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}`` by ``envelope()``::

    ShimError (500 server_error)
    ├── InvalidRequestError (400)
    ├── AuthenticationError (401)
    ├── NotFoundError (404)
    │   └── ModelNotFoundError (404, model_not_found)
    ├── MethodNotAllowedError (405)
    ├── RequestTooLargeError (413)
    ├── UnsupportedMediaTypeError (415)
    ├── RateLimitError (429, rate_limit_exceeded)
    ├── ClientDisconnectedError (499: counted and logged, never sent)
    ├── StateUnavailableError (503, state_unavailable: the response store or Redis failed)
    └── UpstreamError (502; ``reason`` labels the metric)
        ├── UpstreamTimeoutError (504)
        ├── UpstreamUnavailableError (503, model_loading)
        ├── UpstreamOverloadedError (429)
        └── UpstreamRejectedError (400: the upstream refused the request itself)

How upstream answers and transport failures map onto it: ``shim.upstream.failures``.

Text from an upstream (error bodies, stream error events, transport failures) only ever
travels in an ``UpstreamError``'s message, kept as the upstream wrote it: ``shim.redact``
scrubs it where it is rendered for a client or a log.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeVar

import msgspec

T = TypeVar("T")

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
    #: Response headers every error of the class goes with.
    fixed_headers: ClassVar[tuple[tuple[str, str], ...]] = ()

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
        """The error as OpenAI's object, its message unscrubbed (``shim.redact`` renders what
        a client or a log gets)."""
        return ErrorBody(ErrorDetail(self.message, self.type, self.param, self.code))

    def headers(self) -> dict[str, str]:
        """Response headers that go with this error (``Retry-After`` is what SDK retry logic
        reads)."""
        headers = dict(self.fixed_headers)
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, round(self.retry_after)))
        return headers

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status_code})"


class InvalidRequestError(ShimError):
    status_code = 400
    type = "invalid_request_error"


class AuthenticationError(ShimError):
    status_code = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"
    fixed_headers = (("www-authenticate", "Bearer"),)


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
    # The rest of the body is never read: the connection cannot carry another request.
    fixed_headers = (("connection", "close"),)


class UnsupportedMediaTypeError(ShimError):
    status_code = 415
    type = "invalid_request_error"
    default_code = "unsupported_media_type"


class RateLimitError(ShimError):
    status_code = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class ClientDisconnectedError(ShimError):
    """The client left before the answer: nginx's 499, for the access log and the metrics."""

    status_code = 499
    type = "client_closed_request"


class StateUnavailableError(ShimError):
    """The response store or the shared rate windows (Redis) could not be reached."""

    status_code = 503
    type = "server_error"
    default_code = "state_unavailable"


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
        # The upstream's own HTTP status, when it answered with an error (for the log).
        self.upstream_status: int | None = None

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


# --- unreadable answers ----------------------------------------------------------------------


def invalid_response(what: str) -> UpstreamError:
    """An upstream answer shim cannot read (adapters raise it; never retried)."""
    return UpstreamError(
        f"The upstream sent an invalid response: {what}",
        reason="invalid_response",
        code="upstream_invalid_response",
        retryable=False,
    )


def decode_answer(decoder: msgspec.json.Decoder[T], data: bytes, what: str) -> T:
    """An upstream answer (or stream event) decoded, or ``invalid_response`` when it is not
    JSON, lacks or mistypes a field, or is nested deeper than the decoder can follow."""
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise invalid_response(f"{what}: {exc}") from None
    except RecursionError:
        raise invalid_response(f"{what}: nested too deeply") from None
