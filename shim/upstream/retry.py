"""The retry policy, as a pure function (``decide``): after a failed attempt, try again after N
seconds, wait N seconds for a loading model, or give up. Table-tested in
``tests/test_retry.py``. ``Tries`` applies it to one request (its budgets, the upstreams that
failed, the wake-up it leads) for the attempt loop of ``shim.upstream.client``.

Connect errors, 429 and 5xx are retried with exponential backoff and jitter, honouring
``Retry-After`` up to ``RETRY_AFTER_CAP`` (a longer pause is the client's to wait out). Never
4xx, never timeouts (the upstream may still be generating, and billing, the first attempt). A
loading model (503) is waited out within the model's ``wait_for_model`` budget.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import NamedTuple

from shim.clock import Clock
from shim.errors import UpstreamError, UpstreamUnavailableError
from shim.route import Route
from shim.upstream.balancer import Pool

log = logging.getLogger("shim.upstream")

BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
# A Retry-After longer than this is returned to the client instead of waited out.
RETRY_AFTER_CAP = 10.0
# Longest single sleep while waiting for a loading model; the pause without a hint.
LOADING_SLEEP_CAP = 20.0
LOADING_SLEEP_DEFAULT = 2.0
LOADING_SLEEP_MIN = 0.05


class Action(Enum):
    RETRY = "retry"  # back off, then try again (another upstream if there is one)
    WAIT = "wait"  # the model is loading: pause, then try again with the loading headers
    GIVE_UP = "give_up"


class Decision(NamedTuple):
    action: Action
    delay: float = 0.0


GIVE_UP = Decision(Action.GIVE_UP)


def decide(
    error: UpstreamError, *, attempt: int, retries_left: int, loading_left: float, jitter: float
) -> Decision:
    """What to do after ``error`` on retry number ``attempt`` (0 for the first failure).

    ``retries_left``: retries the model's ``retries`` still allow; ``loading_left``: seconds
    left of its ``wait_for_model``; ``jitter``: a random number in [0, 1).
    """
    if isinstance(error, UpstreamUnavailableError):
        if loading_left <= 0:
            return GIVE_UP
        hint = LOADING_SLEEP_DEFAULT if error.retry_after is None else error.retry_after
        return Decision(
            Action.WAIT, max(LOADING_SLEEP_MIN, min(hint, LOADING_SLEEP_CAP, loading_left))
        )
    if not error.retryable or retries_left <= 0:
        return GIVE_UP
    retry_after = error.retry_after
    if retry_after is not None and retry_after > RETRY_AFTER_CAP:
        return GIVE_UP
    backoff = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * (0.5 + jitter)
    return Decision(Action.RETRY, max(backoff, retry_after or 0.0))


class Tries:
    """One request's way through its attempts: what the policy (``decide``) is told, and what
    its decisions change: the budgets, the upstreams that failed, the loading headers, the
    wake-up this request leads."""

    __slots__ = (
        "answered", "attempt", "clock", "failed", "leading", "loading", "loading_deadline",
        "pool", "retries_left", "route",
    )  # fmt: skip

    def __init__(self, route: Route, pool: Pool, clock: Clock) -> None:
        self.route, self.pool, self.clock = route, pool, clock
        self.loading_deadline = clock.monotonic() + route.wait_for_model
        self.retries_left, self.attempt = route.retries, 0
        self.failed: set[int] = set()
        # After a 503 "loading", requests carry the headers that make HF hold them.
        self.loading = False
        # Whether this request leads the wake-up of a loading model (others wait for it).
        self.leading = False
        # When the upstream answered the current attempt (0: not yet).
        self.answered = 0.0

    async def ready(self) -> None:
        """Wait out another request's wake-up of the model, if there is one."""
        wake = self.pool.wake
        if not self.leading and wake.active:
            await wake.wait(self.loading_deadline - self.clock.monotonic())
            self.loading = True

    def after(self, exc: UpstreamError, index: int) -> float | None:
        """After upstream ``index`` failed: seconds to pause before the next attempt (None: go
        on at once); raises ``exc`` when the policy gives up."""
        route, clock = self.route, self.clock
        loading_left = self.loading_deadline - clock.monotonic()
        decision = decide(
            exc, attempt=self.attempt, retries_left=self.retries_left,
            loading_left=loading_left, jitter=clock.random(),
        )  # fmt: skip
        if isinstance(exc, UpstreamUnavailableError):
            if decision.action is Action.GIVE_UP:
                exc.retry_after = max(exc.retry_after or 0.0, 1.0)
                raise exc
            return self._loading(loading_left, decision.delay)
        if exc.retryable:
            threshold, cooldown = route.cooldown_after, route.cooldown
            self.pool.states[index].failed(
                clock.monotonic(), threshold=threshold, cooldown=cooldown
            )
            self.failed.add(index)
        if decision.action is Action.GIVE_UP:
            exc.exhausted = exc.retryable and route.retries > 0
            raise exc
        self.retries_left -= 1
        self.attempt += 1
        log.info("%s: retrying after %s in %.2fs (%d left)",
                 route.name, exc.reason, decision.delay, self.retries_left)  # fmt: skip
        return decision.delay

    def _loading(self, loading_left: float, delay: float) -> float | None:
        wake = self.pool.wake
        if not self.leading and wake.active:
            return None  # someone else is waking it: wait for them (``ready``)
        if not self.leading:
            self.leading = True
            wake.lead()
            log.info("%s: upstream is loading; waiting up to %.0fs", self.route.name, loading_left)
        self.loading = True
        return delay

    def close(self) -> None:
        if self.leading:
            self.pool.wake.end()
