"""Per-key rate windows (``rpm``, ``tpm``): sliding one-minute windows, in this process
(here) or shared through Redis (``state.redis``) so a limit holds across workers and replicas.

Both count as ``auth.KeyInfo`` does: a request is admitted while fewer than ``rpm`` were
admitted, and fewer than ``tpm`` tokens spent, in the last 60 seconds; ``Retry-After`` is when
the oldest entry leaves the window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from shim.errors import RateLimitError

WINDOW = 60.0


class RateWindow(Protocol):
    async def admit(self, now: float | None = None) -> None:
        """Count one request, or raise ``RateLimitError`` (with ``retry_after``)."""

    async def spend(self, tokens: int, now: float | None = None) -> None:
        """Count the tokens a request used (from its usage) against ``tpm``."""


class RateWindows(Protocol):
    def window(self, name: str, *, rpm: int | None, tpm: int | None) -> RateWindow:
        """The window of the key called ``name`` (the same counts for the same name)."""


def rate_limited(name: str, kind: str, limit: int, retry_after: float) -> RateLimitError:
    if kind == "rpm":
        return RateLimitError(
            f"Rate limit reached for key `{name}`: {limit} requests per minute.",
            retry_after=max(1.0, retry_after),
        )
    return RateLimitError(
        f"Rate limit reached for key `{name}`: {limit} tokens per minute.",
        code="tokens_rate_limit_exceeded",
        retry_after=max(1.0, retry_after),
    )


class LocalRateWindow:
    """This process's counts, on a monotonic ``clock`` (injected: tests run it on a fake)."""

    def __init__(
        self,
        name: str,
        rpm: int | None,
        tpm: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.rpm, self.tpm = name, rpm, tpm
        self._clock = clock
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, int]] = deque()
        # The sum of _tokens, kept as entries come and go (not summed per request).
        self._spent = 0

    async def admit(self, now: float | None = None) -> None:
        if self.rpm is None and self.tpm is None:
            return
        now = self._clock() if now is None else now
        horizon = now - WINDOW
        requests, tokens = self._requests, self._tokens
        while requests and requests[0] <= horizon:
            requests.popleft()
        while tokens and tokens[0][0] <= horizon:
            self._spent -= tokens.popleft()[1]
        if self.rpm is not None and len(requests) >= self.rpm:
            oldest = requests[0] if requests else now
            raise rate_limited(self.name, "rpm", self.rpm, oldest - horizon)
        if self.tpm is not None and self._spent >= self.tpm:
            oldest = tokens[0][0] if tokens else now
            raise rate_limited(self.name, "tpm", self.tpm, oldest - horizon)
        if self.rpm is not None:
            requests.append(now)

    async def spend(self, tokens: int, now: float | None = None) -> None:
        if self.tpm is not None and tokens > 0:
            self._tokens.append((self._clock() if now is None else now, tokens))
            self._spent += tokens


class LocalRateWindows:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, LocalRateWindow] = {}

    def window(self, name: str, *, rpm: int | None, tpm: int | None) -> LocalRateWindow:
        # Kept by name so that a config reload changes the limits, not the counts.
        found = self._windows.get(name)
        if found is None:
            found = self._windows[name] = LocalRateWindow(name, rpm, tpm, self._clock)
        found.rpm, found.tpm = rpm, tpm
        return found
