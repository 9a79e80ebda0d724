"""What a reply or an upstream attempt holds (a concurrency slot, an in-flight count, an open
response), released once, in reverse order, on every path.

A lean ``contextlib.AsyncExitStack`` for callbacks only: the stack's callback wrappers, deque
and exit-context machinery, three of them per request, were ~4% of a non-stream chat
request's CPU (``bench/profile.md``). No callback here suppresses an exception, so none of that
machinery is needed: release runs every callback and re-raises the first failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any


class Held:
    __slots__ = ("_undo",)

    def __init__(self) -> None:
        # (callback, its arguments, awaited?) in acquisition order.
        self._undo: list[tuple[Callable[..., Any], tuple[Any, ...], bool]] = []

    def callback(self, release: Callable[..., object], *args: Any) -> None:
        """Call ``release(*args)`` on release."""
        self._undo.append((release, args, False))

    def push_async(self, release: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Await ``release(*args)`` on release."""
        self._undo.append((release, args, True))

    def take(self, other: Held) -> None:
        """Hold what ``other`` holds (released before what this one held so far); ``other``
        is left empty."""
        self._undo.extend(other._undo)
        other._undo = []

    def handover(self) -> Held:
        """A new ``Held`` holding all of this one's; this one is left empty."""
        moved = Held()
        moved.take(self)
        return moved

    async def aclose(self) -> None:
        """Release everything, last acquired first; each callback runs even when one before
        it failed (the first failure is raised at the end). Safe to call twice."""
        undo, self._undo = self._undo, []
        failure: BaseException | None = None
        for release, args, awaited in reversed(undo):
            try:
                if awaited:
                    await release(*args)
                else:
                    release(*args)
            except BaseException as exc:  # re-raised below, once the others ran
                if failure is None:
                    failure = exc
        if failure is not None:
            raise failure

    async def __aenter__(self) -> Held:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
