"""The in-process response store: a dict with expiry; nothing survives a restart, and each
worker process has its own (use sqlite or redis with ``workers`` > 1)."""

from __future__ import annotations

import time

from shim.state._store import Clock, RecordStore

#: Seconds between sweeps of expired records (done on a save, never on a read).
SWEEP_INTERVAL = 60.0


class MemoryStore(RecordStore):
    def __init__(self, *, ttl: float, clock: Clock = time.time) -> None:
        super().__init__(ttl=ttl, clock=clock)
        self._records: dict[str, tuple[bytes, float]] = {}
        self._swept = clock()

    async def _put(self, key: str, blob: bytes, *, expires_at: float) -> None:
        now = self.clock()
        if now - self._swept >= SWEEP_INTERVAL:
            self._swept = now
            self._records = {k: v for k, v in self._records.items() if v[1] > now}
        self._records[key] = (blob, expires_at)

    async def _fetch(self, key: str) -> bytes | None:
        record = self._records.get(key)
        return record[0] if record is not None else None

    async def _remove(self, key: str) -> None:
        self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)
