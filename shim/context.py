"""Per-request bookkeeping shared by the middleware, the serving layer and the upstream client."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

from shim.auth import KeyInfo

#: Key of the RequestContext in the ASGI scope's state.
SCOPE_KEY = "shim.context"

# Ids need to be unique, not secret: a PRNG seeded from the OS is much cheaper per request
# than os.urandom (a syscall each time).
_ids = random.Random()


def new_id(hex_digits: int = 32) -> str:
    """A random hexadecimal id (request ids, completion ids)."""
    return f"{_ids.getrandbits(hex_digits * 4):0{hex_digits}x}"


class RequestContext:
    """What one request did; the access log line and the request metrics are read from it."""

    __slots__ = (
        "api",
        "body",
        "completion_tokens",
        "error_reason",
        "key",
        "key_name",
        "model",
        "prompt_tokens",
        "request_id",
        "start",
        "status",
        "stream",
        "upstream_seconds",
    )

    def __init__(self, request_id: str, api: str) -> None:
        self.request_id = request_id
        # Which API operation ("chat", "embeddings", ... "other"): the `endpoint` label and
        # log field.
        self.api = api
        self.start = time.perf_counter()
        # The configured model name (a metrics label): "unknown" until routed.
        self.model = "unknown"
        self.upstream_seconds = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.stream = False
        self.status = 0
        self.key: KeyInfo | None = None
        self.key_name: str | None = None
        self.error_reason: str | None = None
        # The request body, kept only when `[server] log_bodies = true`.
        self.body: bytes | None = None

    def overhead(self, now: float | None = None) -> float:
        """Seconds shim itself spent so far: elapsed minus time waiting on the upstream."""
        elapsed = (now if now is not None else time.perf_counter()) - self.start
        return max(0.0, elapsed - self.upstream_seconds)


def context_of(scope: Mapping[str, Any]) -> RequestContext | None:
    """The request's context (an ASGI scope, or litestar's typed view of one)."""
    state = scope.get("state")
    if state is None:
        return None
    ctx = state.get(SCOPE_KEY)
    return ctx if isinstance(ctx, RequestContext) else None
