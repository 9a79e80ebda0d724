"""How upstream failures become client-facing errors: an upstream's error answer (status,
body, ``Retry-After``: ``parse_upstream_error``, ``retry_after_seconds``) and a transport
failure (``map_transport_errors``, as httpx maps httpcore's exceptions). Pure, table-tested in
``tests/test_errors.py``. Messages are kept as the upstream wrote them: ``shim.redact``
scrubs them where they are rendered.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

import httpx
import msgspec

from shim import hf
from shim.errors import (
    UpstreamError,
    UpstreamOverloadedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from shim.redact import MAX_MESSAGE
from shim.upstream.transport import ClosedBeforeResponseError

_CONTEXT_LENGTH = re.compile(r"must be <=|must have less than|too long|maximum context length")
#: The longest pause an upstream may ask for (``Retry-After``, ``estimated_time``); longer asks
#: are clamped to it (README "Resilience").
RETRY_AFTER_MAX = 3600.0
#: Items of a pydantic ``detail`` list joined into the message.
DETAIL_MAX = 8
_error_response = msgspec.json.Decoder(hf.ErrorResponse)


def _message_of(body: bytes) -> tuple[str, str | None, float | None]:
    try:
        view = _error_response.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return _bounded_text(body.decode("utf-8", "replace").strip()), None, None
    if isinstance(view.error, dict):
        # Only strings are read: anything else may be nested arbitrarily deep.
        message, kind = view.error.get("message"), view.error.get("type")
        return (
            _bounded_text(message) if isinstance(message, str) else "",
            kind if isinstance(kind, str) else None,
            None,
        )
    message = view.error or view.message or _detail_text(view.detail)
    return _bounded_text(message), view.error_type or view.type, _bounded(view.estimated_time)


def _detail_text(detail: str | list[Any] | None) -> str:
    """FastAPI's ``detail``: a string, or pydantic's ``[{"loc", "msg", "type"}]`` as
    ``"body.top_k: Extra inputs are not permitted; ..."`` (strings only are read)."""
    if isinstance(detail, str) or detail is None:
        return detail or ""
    parts = []
    for item in detail[:DETAIL_MAX]:
        if not isinstance(item, dict) or not isinstance(msg := item.get("msg"), str):
            continue
        loc = item.get("loc")
        where = (
            ".".join(str(p) for p in loc if isinstance(p, str | int))
            if isinstance(loc, list)
            else ""
        )
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def _bounded_text(text: str) -> str:
    """As much as the scrubber passes on (a plain-text body may be a whole HTML page)."""
    return text[:MAX_MESSAGE]


def parse_upstream_error(
    status: int, body: bytes, *, retry_after: float | None = None
) -> UpstreamError:
    """Map an upstream error answer (status, body, ``Retry-After`` in seconds as
    ``retry_after_seconds`` reads it) onto the client-facing error.

    Pure: tested by a table in ``tests/test_errors.py``.
    """
    error = _error_for(status, body, retry_after)
    error.upstream_status = status
    return error


def _error_for(status: int, body: bytes, retry_after: float | None) -> UpstreamError:
    message, kind, estimated = _message_of(body)
    message = message or f"HTTP {status}"
    lowered = (kind or "").lower()
    after = retry_after if retry_after is not None else estimated
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


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """A ``Retry-After`` header (delay-seconds or an HTTP date, RFC 9110 §10.2.3) as seconds
    from ``now`` (a Unix time): finite, at most ``RETRY_AFTER_MAX``; None when absent or
    unreadable (``inf``, ``nan``, negative, garbage). A date in the past is 0."""
    if not value:
        return None
    try:
        return _bounded(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return _bounded(max(0.0, when.timestamp() - now))


def _bounded(seconds: float | None) -> float | None:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_MAX)


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
    context manager, for loops that run per chunk). httpx's exception types only: the
    transport (``shim.upstream.transport``) already told them apart."""
    if isinstance(exc, httpx.ConnectTimeout):
        # Nothing reached the upstream: safe to retry.
        return UpstreamTimeoutError(
            f"Timed out connecting to the upstream {target}.", reason="connect", retryable=True
        )
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"The upstream {target} timed out.")
    if isinstance(exc, httpx.ConnectError):
        return UpstreamError(
            f"Could not connect to the upstream {target}: {str(exc) or 'connection refused'}.",
            reason="connect",
            code="upstream_unreachable",
        )
    if isinstance(exc, ClosedBeforeResponseError):
        # Usually a pooled keep-alive connection the server had closed: safe to retry.
        return UpstreamError(
            f"The upstream {target} closed the connection before answering.", reason="connect"
        )
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError | httpx.WriteError):
        return UpstreamError(
            f"The connection to the upstream {target} broke: {str(exc) or type(exc).__name__}.",
            reason="stream_aborted",
            retryable=False,
        )
    return UpstreamError(
        f"The upstream {target} could not be reached: {type(exc).__name__}.",
        reason="connect",
        code="upstream_unreachable",
    )
