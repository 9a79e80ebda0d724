"""What shim keeps between requests: stored responses (``/v1/responses``) and, with Redis,
the per-key rate windows. ``open_state`` builds both from ``[state]``, once per process::

    sqlite (default)  one file, shared by the workers of one host
    memory            this process only, gone on restart
    redis             shared by every worker and replica (the ``[redis]`` extra)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from shim.config import ConfigError, StateConfig
from shim.state._store import (
    SHARED_OWNER,
    Clock,
    ResponseStore,
    StoredResponse,
    not_found,
    page_items,
)
from shim.state.memory import MemoryStore
from shim.state.rate import LocalRateWindows, RateWindow, RateWindows
from shim.state.sqlite import SQLiteStore

__all__ = [
    "SHARED_OWNER",
    "RateWindow",
    "RateWindows",
    "ResponseStore",
    "State",
    "StoredResponse",
    "not_found",
    "open_state",
    "page_items",
]


@dataclass(slots=True)
class State:
    responses: ResponseStore
    rates: RateWindows
    # Closes what both share (the Redis client), after the store.
    close_shared: Callable[[], Awaitable[None]] | None = None

    async def aclose(self) -> None:
        await self.responses.aclose()
        if self.close_shared is not None:
            await self.close_shared()


def open_state(config: StateConfig, *, base_dir: Path, clock: Clock = time.time) -> State:
    """The stores ``config`` names; nothing is opened yet (SQLite and Redis connect on first
    use). A relative SQLite ``path`` is taken from ``base_dir`` (the config file's folder)."""
    if config.backend == "memory":
        return State(MemoryStore(ttl=config.response_ttl, clock=clock), LocalRateWindows())
    if config.backend == "sqlite":
        path = Path(config.path or "state.db").expanduser()
        store = SQLiteStore(base_dir / path, ttl=config.response_ttl, clock=clock)
        return State(store, LocalRateWindows())
    return _open_redis(config, clock)


def _open_redis(config: StateConfig, clock: Clock) -> State:
    try:
        import redis.asyncio

        from shim.state import redis as shared
    except ImportError:
        raise ConfigError(
            'state.backend: "redis" needs the redis package: pip install "shim[redis]"'
        ) from None
    client = redis.asyncio.Redis.from_url(config.url or "")
    store = shared.RedisStore(
        client, prefix=config.key_prefix, ttl=config.response_ttl, clock=clock
    )
    rates = shared.RedisRateWindows(client, prefix=config.key_prefix)
    return State(store, rates, close_shared=client.aclose)
