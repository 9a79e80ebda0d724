"""Live state, one object per process: what the upstreams are doing (health, load, cooldowns,
wake-ups), the concurrency slots, the key rate windows.

Every config (at startup and on each reload) is turned into an ``Active``: its frozen routes
and keys, plus the live objects they use. Those are kept from the previous config for whatever
did not change: an upstream whose model name and URL are unchanged keeps its health and
in-flight count; a model keeps its wake-up; a model whose ``max_concurrency`` or ``max_queue``
changed gets a new slot pool (requests holding the old one release it there); a key keeps its
rate windows by name (``shim.state.rate``: counted on, under new limits if they changed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from shim.auth import Keyring
from shim.clock import Clock
from shim.config import Config
from shim.errors import RateLimitError
from shim.redact import Scrubber
from shim.routing import Router
from shim.state.rate import LocalRateWindows, RateWindow, RateWindows
from shim.upstream.balancer import Pool, UpstreamState, WakeUp


class SlotPool:
    """A model's ``max_concurrency`` slots and the bounded queue waiting for them."""

    __slots__ = ("_queued", "_slots", "max_queue", "model")

    def __init__(self, model: str, size: int, max_queue: int) -> None:
        self.model = model
        self._slots = asyncio.Semaphore(size)
        self._queued = 0
        self.max_queue = max_queue

    async def acquire(self) -> None:
        """A slot, after waiting in the queue; 429 at once when the queue is full."""
        if self._slots.locked() and self._queued >= self.max_queue:
            raise RateLimitError(
                f"Too many concurrent requests for `{self.model}`; try again shortly.",
                retry_after=1.0,
            )
        self._queued += 1
        try:
            await self._slots.acquire()
        finally:
            self._queued -= 1

    def release(self) -> None:
        self._slots.release()


@dataclass(frozen=True, slots=True)
class Active:
    """One config as it is served: read once per request, so a request sees one consistent set
    even if a reload swaps it meanwhile."""

    config: Config
    router: Router
    keyring: Keyring
    # By model name: its upstreams' live state (in the order of ``route.upstreams``).
    pools: Mapping[str, Pool]
    # By model name, for models with ``max_concurrency``.
    slots: Mapping[str, SlotPool]
    # By key name, for keys with ``rpm`` or ``tpm``.
    windows: Mapping[str, RateWindow]
    # What may reach a client or a log of the text upstreams send (knows the config's secrets).
    scrubber: Scrubber


class LiveState:
    def __init__(self, clock: Clock, *, rates: RateWindows | None = None) -> None:
        self.clock = clock
        # The key rate windows: this process's (on ``clock``), unless shared ones (Redis, on
        # the server's clock) are given.
        self.rates: RateWindows = rates if rates is not None else LocalRateWindows(clock.monotonic)
        self._upstreams: dict[tuple[str, str], UpstreamState] = {}
        self._wakes: dict[str, WakeUp] = {}
        self._slots: dict[tuple[str, int, int], SlotPool] = {}

    def activate(self, config: Config, *, previous: Config | None = None) -> Active:
        """The routes and keys of ``config`` with their live state; raises ``ConfigError``
        (before anything changed) for a config that cannot be served. The scrubber also knows
        the secrets of the ``previous`` config: requests in flight still send its tokens."""
        router, keyring = Router(config), Keyring(config.server)
        upstreams: dict[tuple[str, str], UpstreamState] = {}
        wakes: dict[str, WakeUp] = {}
        slots: dict[tuple[str, int, int], SlotPool] = {}
        pools: dict[str, Pool] = {}
        by_model: dict[str, SlotPool] = {}
        for name, route in router.routes.items():
            states = []
            for upstream in route.upstreams:
                key = (name, upstream.base)
                states.append(upstreams.get(key) or self._upstreams.get(key) or UpstreamState())
                upstreams[key] = states[-1]
            wakes[name] = self._wakes.get(name) or WakeUp(self.clock)
            pools[name] = Pool(tuple(states), wakes[name])
            size = route.config.max_concurrency
            if size:
                queue = route.config.max_queue
                slot_pool = self._slots.get((name, size, queue)) or SlotPool(name, size, queue)
                slots[(name, size, queue)] = by_model[name] = slot_pool
        windows = {
            info.name: self.rates.window(info.name, rpm=info.rpm, tpm=info.tpm)
            for info in keyring.keys
            if info.limited
        }
        self._upstreams, self._wakes, self._slots = upstreams, wakes, slots
        scrubber = Scrubber.for_config(config, *([previous] if previous is not None else []))
        return Active(config, router, keyring, pools, by_model, windows, scrubber)
