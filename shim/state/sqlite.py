"""The default response store: one SQLite file (WAL, so worker processes share it), used
through one connection owned by one worker thread, so the event loop never waits on disk.
Concurrent saves (and reads) are grouped: one statement per round (``shim.state._batch``).

The schema is created on first use; the file is made readable by its owner only (it holds
prompts and answers). Records are msgspec-encoded JSON.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from shim.errors import StateUnavailableError
from shim.state._batch import MAX_BATCH, BatchedStore, Row
from shim.state._store import Clock

T = TypeVar("T")

#: Seconds between deletions of expired rows (done on a save).
SWEEP_INTERVAL = 60.0
# Other workers may hold the write lock briefly; wait for it rather than fail.
_BUSY_TIMEOUT_MS = 5000
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses ("
    " id TEXT PRIMARY KEY, expires_at REAL NOT NULL, record BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS responses_expiry ON responses (expires_at)",
)


@functools.lru_cache(maxsize=MAX_BATCH)
def _insert(rows: int) -> str:
    values = ", ".join(["(?, ?, ?)"] * rows)
    # Columns in ``Row``'s order.
    return f"INSERT OR REPLACE INTO responses (id, record, expires_at) VALUES {values}"


@functools.lru_cache(maxsize=MAX_BATCH)
def _select(keys: int) -> str:
    return f"SELECT id, record FROM responses WHERE id IN ({', '.join(['?'] * keys)})"


class SQLiteStore(BatchedStore):
    def __init__(self, path: Path, *, ttl: float, clock: Clock = time.time) -> None:
        super().__init__(ttl=ttl, clock=clock)
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shim-sqlite")
        self._db: sqlite3.Connection | None = None
        self._swept = float("-inf")

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, lambda: work(self._connection()))
        except (sqlite3.Error, OSError) as exc:
            raise StateUnavailableError(
                f"The response store (SQLite) is unavailable: {type(exc).__name__}."
            ) from None

    def _connection(self) -> sqlite3.Connection:
        """Opened on first use, in the worker thread (the only thread that touches it)."""
        if self._db is None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Created private before SQLite opens it (its -wal/-shm files copy the mode).
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA:
                db.execute(statement)
            self._db = db
        return self._db

    async def _put_rows(self, rows: list[Row]) -> list[None]:
        """One round of writes: one statement (and, each ``SWEEP_INTERVAL``, the sweep), one
        thread trip."""
        now = self.clock()
        sweep = now - self._swept >= SWEEP_INTERVAL
        if sweep:
            self._swept = now
        values = [value for row in rows for value in row]

        def put(db: sqlite3.Connection) -> None:
            if sweep:
                db.execute("DELETE FROM responses WHERE expires_at <= ?", (now,))
            db.execute(_insert(len(rows)), values)

        await self._run(put)
        return [None] * len(rows)

    async def _fetch_rows(self, keys: list[str]) -> list[bytes | None]:
        def fetch(db: sqlite3.Connection) -> dict[str, bytes]:
            rows = db.execute(_select(len(keys)), keys).fetchall()
            return {key: bytes(record) for key, record in rows}

        found = await self._run(fetch)
        return [found.get(key) for key in keys]

    async def _remove(self, key: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM responses WHERE id = ?", (key,)))

    async def aclose(self) -> None:
        await super().aclose()

        def close(_: sqlite3.Connection) -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        if self._db is not None:
            await self._run(close)
        self._thread.shutdown(wait=False)
