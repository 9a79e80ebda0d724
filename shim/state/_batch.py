"""Group commit: store operations made while one is in progress are done together, in the next
round trip, as one statement (SQLite) or one pipeline (Redis).

Measured (``python -m bench``, ``responses_c32``, bench/profile.md): one SQLite write per
request through the store's thread capped the Responses API at ~0.6x of chat's requests/s. The
thread must win the GIL back from a busy event loop after every SQLite call, which can take a
whole switch interval (5 ms), so per-request writes queued behind each other. Batched, the
thread makes one trip per round however many requests wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - the item, as in the other type variables of this module
O = TypeVar("O")  # noqa: E741

#: Items per round: bounds one statement's size (SQLite allows 32,766 parameters).
MAX_BATCH = 512


class Batcher(Generic[I, O]):
    """``await submit(item)`` returns ``run(items)``'s result for that item; items submitted
    while a round runs wait for the next round. A round that fails fails all its items (each
    caller gets the error); one caller leaving does not cancel the round."""

    __slots__ = ("_pending", "_round", "_run")

    def __init__(self, run: Callable[[list[I]], Awaitable[list[O]]]) -> None:
        self._run = run
        self._pending: list[tuple[I, asyncio.Future[O]]] = []
        self._round: asyncio.Task[None] | None = None

    async def submit(self, item: I) -> O:
        future: asyncio.Future[O] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._round is None:
            self._round = asyncio.create_task(self._rounds())
        return await future

    async def _rounds(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    results = await self._run([item for item, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch + self._pending:
                        future.cancel()
                    self._pending = []
                    raise
                except Exception as exc:  # not handled here: each waiter raises it as its own
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._round = None

    async def drain(self) -> None:
        """Wait for the rounds in progress (before the store closes)."""
        while self._round is not None:
            await asyncio.shield(self._round)
