"""Time and chance, injected: retries, backoff, cooldowns, wake-ups and rate windows read the
clock through a ``Clock``, so tests run them on a fake one without sleeping.

I/O deadlines (upstream timeouts, a stream's watchdog) stay on the event loop's own clock: they
bound real waits on sockets.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def random(self) -> float:
        """A number in [0, 1) (backoff jitter)."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ("_random",)

    def __init__(self) -> None:
        self._random = random.Random()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def random(self) -> float:
        return self._random.random()
