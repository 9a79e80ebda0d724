"""A clock the test moves (``shim.clock.Clock``): retries, backoff, cooldowns, wake-ups and
rate windows run on it without sleeping.

``auto=True``: every ``sleep`` ends at once and moves the clock by its length (what a test of
one request's retries wants). ``auto=False``: a ``sleep`` waits until ``advance`` moves the
clock past its end (what a test of several requests sharing a wait wants).
"""

from __future__ import annotations

import asyncio


class FakeClock:
    def __init__(self, *, auto: bool = True, now: float = 1000.0, jitter: float = 0.5) -> None:
        self.auto = auto
        self.now = now
        self.jitter = jitter
        #: Every sleep asked for, in order.
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    def random(self) -> float:
        return self.jitter

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.auto:
            self.now += max(0.0, seconds)
            await asyncio.sleep(0)
            return
        waiter = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, waiter))
        await waiter

    @property
    def sleeping(self) -> int:
        """Sleeps in progress (``auto=False``)."""
        return sum(1 for _, waiter in self._sleepers if not waiter.done())

    def advance(self, seconds: float) -> None:
        """Move the clock; the sleeps it passed the end of are over."""
        self.now += seconds
        pending = []
        for deadline, waiter in self._sleepers:
            if waiter.done():
                continue
            if deadline <= self.now:
                waiter.set_result(None)
            else:
                pending.append((deadline, waiter))
        self._sleepers = pending


async def until(condition: object, *, tries: int = 500) -> None:
    """Let the event loop run (10 ms at a time, bounded) until ``condition()`` holds."""
    assert callable(condition)
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")
