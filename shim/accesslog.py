"""Logging: setup, and the one structured line written per request.

The line carries ids, model, endpoint, status, timings and token counts; never headers, keys,
tokens or prompt text (unless ``[server] log_bodies = true``, which is documented as sensitive).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import msgspec

from shim.config import ServerConfig
from shim.context import RequestContext

access = logging.getLogger("shim.access")
_encoder = msgspec.json.Encoder()
_state = {"json": False, "bodies": False}
BODY_LOG_LIMIT = 4096


def bodies_enabled() -> bool:
    """Whether request bodies go into the access log (``log_bodies``; sensitive)."""
    return _state["bodies"]


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


class BufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr through a buffer: access lines are flushed at most every ``FLUSH_EVERY`` seconds
    (a write syscall per request was a measurable cost under load), anything else at once. A
    daemon thread flushes what waits, so a line is never held longer than that."""

    FLUSH_EVERY = 0.25

    def __init__(self) -> None:
        stream = open(  # noqa: SIM115 - lives as long as the process
            sys.stderr.fileno(), "w", buffering=1 << 16, encoding="utf-8", closefd=False
        )
        super().__init__(stream)
        self._flushed = time.monotonic()
        self._pending = False
        threading.Thread(target=self._flusher, name="shim-log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(line + "\n")
                self._pending = True
                if record.name != "shim.access" or record.levelno > logging.INFO:
                    self._flush_locked()
        except Exception:
            self.handleError(record)

    def _flush_locked(self) -> None:
        self.stream.flush()
        self._flushed = time.monotonic()
        self._pending = False

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._pending:
                self._flush_locked()

    def _flusher(self) -> None:
        while True:
            time.sleep(self.FLUSH_EVERY)
            if self._pending:
                self.flush()


def configure(server: ServerConfig) -> None:
    """Set up shim's loggers once per process (idempotent)."""
    _state["json"] = server.log_format == "json"
    _state["bodies"] = server.log_bodies
    handler: logging.Handler = _shared_handler()
    handler.setFormatter(JSONFormatter() if _state["json"] else TextFormatter())
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


_handler: list[BufferedHandler] = []


def _shared_handler() -> BufferedHandler:
    # One per process: app factories may run more than once (tests, reloads).
    if not _handler:
        _handler.append(BufferedHandler())
    return _handler[0]


def write(ctx: RequestContext, scope: Any, now: float) -> None:
    if not access.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {
        "request_id": ctx.request_id,
        "method": scope["method"],
        "path": scope["path"],
        "endpoint": ctx.endpoint,
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
        fields["body"] = ctx.body[:BODY_LOG_LIMIT].decode("utf-8", "replace")
    if _state["json"]:
        access.info("request", extra={"fields": fields})
    else:
        access.info(" ".join(f"{k}={v}" for k, v in fields.items()))
