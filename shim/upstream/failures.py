"""How upstream failures become client-facing errors: an upstream's error answer (status and
body, ``parse_upstream_error``) and a transport failure (``map_transport_errors``, as httpx
maps httpcore's exceptions). Pure, table-tested in ``tests/test_errors.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import msgspec

from shim import hf
from shim.errors import (
    UpstreamError,
    UpstreamOverloadedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    scrub,
)

_CONTEXT_LENGTH = re.compile(r"must be <=|must have less than|too long|maximum context length")
_error_response = msgspec.json.Decoder(hf.ErrorResponse)


def _message_of(body: bytes) -> tuple[str, str | None, float | None]:
    try:
        view = _error_response.decode(body)
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
    """Map an upstream error answer (status, body) onto the client-facing error."""
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
        return _refused(
            f"The upstream refused shim's credentials (HTTP {status}); check the model's token.",
            "upstream_auth_failed",
        )
    if status == 404:
        return _refused(
            f"The upstream has no such route or model (HTTP 404): {message}", "upstream_not_found"
        )
    if status == 408:
        return UpstreamTimeoutError(f"The upstream timed out: {message}", reason="timeout")
    if 400 <= status < 500 and status != 424:
        # (424 is TGI's "generation failed" / TEI's "backend error": a server fault.)
        code = "context_length_exceeded" if _CONTEXT_LENGTH.search(message) else None
        return UpstreamRejectedError(message, code=code)
    return UpstreamError(f"The upstream failed (HTTP {status}): {message}", reason="http_5xx")


def _refused(message: str, code: str) -> UpstreamError:
    """A 4xx about shim's setup (token, route), not the request: a 502, never retried."""
    return UpstreamError(message, reason="http_4xx", code=code, retryable=False)


def _retry_after(header: str | None, estimated: float | None) -> float | None:
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    return estimated


# --- transport errors ------------------------------------------------------------------------


@contextmanager
def map_transport_errors(target: str) -> Iterator[None]:
    """Turn httpx's transport exceptions into client-facing errors.

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
