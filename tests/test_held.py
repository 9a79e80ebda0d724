"""``Held``: what a reply or an attempt holds is released once, last acquired first, on every
path, even when one release fails."""

from __future__ import annotations

import pytest

from shim.held import Held


async def test_released_in_reverse_order_once() -> None:
    order: list[str] = []

    async def close(name: str) -> None:
        order.append(name)

    async with Held() as held:
        held.callback(order.append, "slot")
        held.push_async(close, "response")
    await held.aclose()  # a second release does nothing
    assert order == ["response", "slot"]


async def test_every_release_runs_and_the_first_failure_is_raised() -> None:
    order: list[str] = []

    def fail(what: str) -> None:
        order.append(what)
        raise RuntimeError(what)

    held = Held()
    held.callback(order.append, "first")
    held.callback(fail, "second")
    held.callback(fail, "third")
    with pytest.raises(RuntimeError, match="third"):
        await held.aclose()
    assert order == ["third", "second", "first"]


async def test_take_and_handover_move_everything() -> None:
    order: list[str] = []
    reply, attempt = Held(), Held()
    reply.callback(order.append, "gauge")
    attempt.callback(order.append, "slot")
    reply.take(attempt)
    await attempt.aclose()  # emptied by take
    assert order == []
    moved = reply.handover()
    await reply.aclose()
    assert order == []
    await moved.aclose()
    assert order == ["slot", "gauge"]
