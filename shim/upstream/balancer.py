"""The live side of a model's upstreams: each one's load and health, the model's wake-up, and
the choice of upstream for an attempt.

These objects outlive a config: ``shim.live`` keeps them across reloads for every model name
and URL that did not change, so a reload forgets no cooldown and no in-flight count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from shim.clock import Clock


class UpstreamState:
    """One upstream URL of one model: requests in flight, failures in a row, cooldown."""

    __slots__ = ("cooled_until", "failures", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self.failures = 0
        self.cooled_until = 0.0

    def healthy(self, now: float) -> bool:
        return self.cooled_until <= now

    def succeeded(self) -> None:
        self.failures = 0
        self.cooled_until = 0.0

    def failed(self, now: float, *, threshold: int, cooldown: float) -> None:
        """A retryable failure; ``threshold`` of them in a row rest the upstream ``cooldown``s."""
        self.failures += 1
        if threshold > 0 and self.failures >= threshold:
            self.cooled_until = now + cooldown


class WakeUp:
    """A loading model's wake-up: one request polls it, the others wait for that one."""

    __slots__ = ("_clock", "_event")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._event: asyncio.Event | None = None

    @property
    def active(self) -> bool:
        return self._event is not None

    def lead(self) -> None:
        self._event = asyncio.Event()

    def end(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self, remaining: float) -> None:
        """Until the leader is done, or ``remaining`` seconds (on the injected clock)."""
        event = self._event
        if event is None or remaining <= 0:
            return
        woken = asyncio.ensure_future(event.wait())
        timer = asyncio.ensure_future(self._clock.sleep(remaining))
        try:
            await asyncio.wait((woken, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            timer.cancel()


class Pool:
    """One route's upstreams as an attempt sees them: their states (in the route's order), the
    model's wake-up, and whose turn it is on ties."""

    __slots__ = ("_turn", "states", "wake")

    def __init__(self, states: tuple[UpstreamState, ...], wake: WakeUp) -> None:
        self.states = states
        self.wake = wake
        self._turn = 0

    def pick(self, avoid: Collection[int], now: float) -> int:
        """The index of the least loaded healthy upstream not in ``avoid`` (round robin on
        ties); if none is left, the one whose cooldown ends first (a probe)."""
        states = self.states
        count = len(states)
        if count == 1:
            return 0
        start = self._turn
        self._turn = (start + 1) % count
        order = [(start + i) % count for i in range(count)]
        healthy = [i for i in order if states[i].healthy(now) and i not in avoid]
        if not healthy:
            left = [i for i in order if i not in avoid] or order
            return min(left, key=lambda i: states[i].cooled_until)
        return min(healthy, key=lambda i: states[i].in_flight)
