"""Group commit (``shim.state._batch``): operations submitted while a round runs are done
together in the next one; a failed round fails its own callers only."""

from __future__ import annotations

import asyncio

import pytest

from shim.errors import StateUnavailableError
from shim.state._batch import MAX_BATCH, Batcher


class Recorder:
    def __init__(self, *, fail_first: bool = False) -> None:
        self.rounds: list[list[int]] = []
        self.fail_first = fail_first
        self.gate = asyncio.Event()

    async def run(self, items: list[int]) -> list[int]:
        self.rounds.append(items)
        await self.gate.wait()
        if self.fail_first and len(self.rounds) == 1:
            raise StateUnavailableError("down")
        return [i * 10 for i in items]


async def test_waiting_operations_share_the_next_round() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0)  # the first round starts with item 0 alone
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == 0
    assert [await task for task in rest] == [10, 20, 30, 40, 50]
    assert recorder.rounds == [[0], [1, 2, 3, 4, 5]]


async def test_a_failed_round_fails_its_callers_and_the_next_round_runs() -> None:
    recorder = Recorder(fail_first=True)
    batcher: Batcher[int, int] = Batcher(recorder.run)
    failing = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    later = asyncio.create_task(batcher.submit(3))
    await asyncio.sleep(0)
    recorder.gate.set()
    for task in failing:
        with pytest.raises(StateUnavailableError):
            await task
    assert await later == 30


async def test_a_caller_that_leaves_does_not_cancel_the_round() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    leaving = asyncio.create_task(batcher.submit(1))
    staying = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await staying == 20
    await batcher.drain()
    assert recorder.rounds == [[1, 2]]


async def test_rounds_are_bounded() -> None:
    recorder = Recorder()
    recorder.gate.set()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(MAX_BATCH + 3)))
    assert results == [i * 10 for i in range(MAX_BATCH + 3)]
    assert [len(r) for r in recorder.rounds] == [MAX_BATCH, 3]


async def test_two_rounds_run_at_once_and_the_rest_wait() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    tasks = []
    for batch in ([1], [2], [3, 4]):  # one event-loop iteration each
        tasks += [asyncio.create_task(batcher.submit(i)) for i in batch]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert recorder.rounds == [[1], [2]]  # the third waits for one of them
    recorder.gate.set()
    assert [await t for t in tasks] == [10, 20, 30, 40]
    assert recorder.rounds == [[1], [2], [3, 4]]
