"""Group commit: store operations submitted together (in one event-loop iteration, or while
two rounds are running) are done in one round trip, as one statement (SQLite) or one pipeline
(Redis). ``BatchedStore`` is a ``RecordStore`` whose saves and reads go through it.

Measured (``python -m bench``, ``responses_c32``, bench/profile.md): one SQLite write per
request through the store's thread capped the Responses API at ~0.6x of chat's requests/s. The
thread must win the GIL back from a busy event loop after every SQLite call, which can take a
whole switch interval (5 ms), so per-request writes queued behind each other. Batched, the
thread makes one trip per round however many requests wait.
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from shim.state._store import Clock, RecordStore

I = TypeVar("I")  # noqa: E741 - the item, as in the other type variables of this module
O = TypeVar("O")  # noqa: E741

#: Items per round: bounds one statement's size (SQLite allows 32,766 parameters).
MAX_BATCH = 512
#: Rounds running at once (see ``Batcher``).
IN_FLIGHT = 2
#: (key, record, expires_at): one save, as a round of writes takes it.
Row = tuple[str, bytes, float]


class Batcher(Generic[I, O]):
    """``await submit(item)`` returns ``run(items)``'s result for that item. Items submitted
    in one event-loop iteration start one round together, as soon as fewer than ``IN_FLIGHT``
    rounds run; the others wait and make the next. A round that fails fails all its items
    (each caller gets the error); one caller leaving does not cancel the round.

    Two rounds in flight: the next round is already queued behind the running one (SQLite's
    thread takes it without waiting for the event loop), and the loop collects the one after.
    Rounds start in submission order; SQLite's one thread also runs them in that order.
    """

    __slots__ = ("_pending", "_rounds", "_run", "_scheduled")

    def __init__(self, run: Callable[[list[I]], Awaitable[list[O]]]) -> None:
        self._run = run
        self._pending: list[tuple[I, asyncio.Future[O]]] = []
        self._rounds: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def submit(self, item: I) -> O:
        future: asyncio.Future[O] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._scheduled:
            # After this iteration's other callbacks: what they submit joins this round.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)
        return await future

    def _start(self) -> None:
        self._scheduled = False
        while self._pending and len(self._rounds) < IN_FLIGHT:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            task = asyncio.get_running_loop().create_task(self._round(batch))
            self._rounds.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._rounds.discard(task)
        if self._pending and not self._scheduled:
            self._start()

    async def _round(self, batch: list[tuple[I, asyncio.Future[O]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # not handled here: each waiter raises it as its own
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def drain(self) -> None:
        """Wait for the rounds in progress (before the store closes)."""
        while self._rounds or self._pending:
            if self._rounds:
                await asyncio.wait(set(self._rounds))
            else:
                await asyncio.sleep(0)


class BatchedStore(RecordStore):
    """A ``RecordStore`` whose saves and reads are grouped into rounds: a backend implements
    the rounds (``_put_rows``, ``_fetch_rows``) and ``_remove``."""

    def __init__(self, *, ttl: float, clock: Clock = time.time) -> None:
        super().__init__(ttl=ttl, clock=clock)
        self._writes: Batcher[Row, None] = Batcher(self._put_rows)
        self._reads: Batcher[str, bytes | None] = Batcher(self._fetch_rows)

    @abstractmethod
    async def _put_rows(self, rows: list[Row]) -> list[None]: ...

    @abstractmethod
    async def _fetch_rows(self, keys: list[str]) -> list[bytes | None]:
        """Each key's record, or None, in the keys' order."""

    async def _put(self, key: str, blob: bytes, *, expires_at: float) -> None:
        await self._writes.submit((key, blob, expires_at))

    async def _fetch(self, key: str) -> bytes | None:
        return await self._reads.submit(key)

    async def aclose(self) -> None:
        """Finish the rounds in progress (a backend closes its connection after this)."""
        await self._writes.drain()
        await self._reads.drain()
