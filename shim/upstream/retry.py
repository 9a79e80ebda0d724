"""The retry policy, as a pure function: after a failed attempt, try again after N seconds,
wait N seconds for a loading model, or give up. Table-tested in ``tests/test_retry.py``; the
client loop that applies it is ``shim.upstream.client``.

Connect errors, 429 and 5xx are retried with exponential backoff and jitter, honouring
``Retry-After`` up to ``RETRY_AFTER_CAP`` (a longer pause is the client's to wait out). Never
4xx, never timeouts (the upstream may still be generating, and billing, the first attempt). A
loading model (503) is waited out within the model's ``wait_for_model`` budget.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from shim.errors import UpstreamError, UpstreamUnavailableError

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
