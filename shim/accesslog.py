"""Logging: setup, and the one structured line written per request.

The line carries ids, model, endpoint, status, timings and token counts; never headers, keys,
tokens or prompt text (unless ``[server] log_bodies = true``, which is documented as sensitive).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import msgspec

from shim.config import ServerConfig
from shim.context import RequestContext
from shim.types import Scope

_encoder = msgspec.json.Encoder()
BODY_LOG_LIMIT = 4096


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return _encoder.encode(entry).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatException(self, ei: Any) -> str:
        # One line: the exception type only; tracebacks could carry request data.
        return f"  ({ei[0].__name__})" if ei and ei[0] else ""


def configure(server: ServerConfig) -> None:
    """Set up shim's loggers once per process (idempotent)."""
    ACCESS.json = server.log_format == "json"
    ACCESS.bodies = server.log_bodies
    ACCESS.enabled = server.log_level in ("debug", "info")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if ACCESS.json else TextFormatter())
    root = logging.getLogger("shim")
    for old in list(root.handlers):
        if getattr(old, "_shim", False):
            root.removeHandler(old)
    handler._shim = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(server.log_level.upper())
    # The logging docs' own optimisations: no caller lookup (a stack walk per record), no
    # thread/process names; shim's lines carry none of them.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root.propagate = True
    # httpx logs every request at INFO; the access line already covers it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


class AccessLog:
    """The per-request line, written by shim itself rather than as a ``logging`` record: a
    record per request (and a write per record) was ~15% of a request's CPU under load. Lines
    are buffered and written together within ``FLUSH_AFTER`` seconds; ``flush()`` on shutdown.
    """

    FLUSH_AFTER = 0.01

    def __init__(self) -> None:
        self.stream: Any = sys.stderr
        self.json = False
        self.enabled = True
        # Request bodies in the line (``log_bodies``; sensitive).
        self.bodies = False
        self._pending: list[str] = []
        self._second = -1
        self._stamp = ""

    def _timestamp(self, wall: float) -> str:
        second = int(wall)
        if second != self._second:  # formatted once per second
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int(wall % 1 * 1000):03d}"

    def write(self, ctx: RequestContext, scope: Scope, now: float) -> None:
        if not self.enabled:
            return
        wall = time.time()
        if self.json:
            fields: dict[str, Any] = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall))
                + f".{int(wall % 1 * 1000):03d}Z",
                "level": "info",
                "logger": "shim.access",
                **_fields(ctx, scope, now),
            }
            line = _encoder.encode(fields).decode() + "\n"
        else:
            extra = ""
            if ctx.key_name is not None:
                extra += f" key={ctx.key_name}"
            if ctx.error_reason is not None:
                extra += f" error={ctx.error_reason}"
            if ctx.body is not None:
                extra += f" body={_body(ctx.body)!r}"
            line = (
                f"{self._timestamp(wall)} INFO shim.access: request_id={ctx.request_id} "
                f"method={scope['method']} path={scope['path']} endpoint={ctx.api} "
                f"model={ctx.model} status={ctx.status} "
                f"duration_ms={(now - ctx.start) * 1000:.3f} "
                f"upstream_ms={ctx.upstream_seconds * 1000:.3f} "
                f"overhead_ms={ctx.overhead(now) * 1000:.3f} "
                f"prompt_tokens={ctx.prompt_tokens} completion_tokens={ctx.completion_tokens} "
                f"stream={ctx.stream}{extra}\n"
            )
        self._pending.append(line)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_AFTER, self.flush)
            except RuntimeError:  # no event loop: write now
                self.flush()

    def flush(self) -> None:
        if self._pending:
            text, self._pending = "".join(self._pending), []
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # a closed stderr must not break serving
                pass


def _body(body: bytes) -> str:
    return body[:BODY_LOG_LIMIT].decode("utf-8", "replace")


def _fields(ctx: RequestContext, scope: Scope, now: float) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": ctx.request_id,
        "method": scope["method"],
        "path": scope["path"],
        "endpoint": ctx.api,
        "model": ctx.model,
        "status": ctx.status,
        "duration_ms": round((now - ctx.start) * 1000, 3),
        "upstream_ms": round(ctx.upstream_seconds * 1000, 3),
        "overhead_ms": round(ctx.overhead(now) * 1000, 3),
        "prompt_tokens": ctx.prompt_tokens,
        "completion_tokens": ctx.completion_tokens,
        "stream": ctx.stream,
    }
    if ctx.key_name is not None:
        fields["key"] = ctx.key_name
    if ctx.error_reason is not None:
        fields["error"] = ctx.error_reason
    if ctx.body is not None:
        fields["body"] = _body(ctx.body)
    return fields


#: The process's access log.
ACCESS = AccessLog()


def write(ctx: RequestContext, scope: Scope, now: float) -> None:
    ACCESS.write(ctx, scope, now)
