"""The retry policy (``shim.upstream.retry.decide``), one row per situation."""

from __future__ import annotations

import pytest

from shim.errors import (
    UpstreamError,
    UpstreamOverloadedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from shim.upstream.retry import Action, Decision, decide

RETRY, WAIT, GIVE_UP = Action.RETRY, Action.WAIT, Action.GIVE_UP


def loading(estimated: float | None) -> UpstreamUnavailableError:
    error = UpstreamUnavailableError("loading")
    error.retry_after = estimated
    return error


CASES = [
    # (error, attempt, retries_left, loading_left, jitter) -> decision
    pytest.param(UpstreamError("500"), 0, 2, 120, 0.5, Decision(RETRY, 0.25), id="5xx-first-retry"),
    pytest.param(UpstreamError("500"), 1, 1, 120, 0.5, Decision(RETRY, 0.5), id="5xx-backoff-doubles"),
    pytest.param(UpstreamError("500"), 0, 2, 120, 0.0, Decision(RETRY, 0.125), id="jitter-low"),
    pytest.param(UpstreamError("500"), 0, 2, 120, 0.999, Decision(RETRY, 0.37475), id="jitter-high"),
    pytest.param(UpstreamError("500"), 9, 5, 120, 0.5, Decision(RETRY, 8.0), id="backoff-capped"),
    pytest.param(UpstreamError("500"), 2, 0, 120, 0.5, Decision(GIVE_UP), id="no-retries-left"),
    pytest.param(UpstreamError("refused", reason="connect"), 0, 1, 0, 0.5, Decision(RETRY, 0.25), id="connect-error"),
    pytest.param(UpstreamOverloadedError("busy", retry_after=3.0), 0, 2, 120, 0.5, Decision(RETRY, 3.0), id="retry-after-honoured"),
    pytest.param(UpstreamOverloadedError("busy", retry_after=0.0), 0, 2, 120, 0.5, Decision(RETRY, 0.25), id="retry-after-zero"),
    pytest.param(UpstreamOverloadedError("busy", retry_after=11.0), 0, 2, 120, 0.5, Decision(GIVE_UP), id="retry-after-too-long"),
    pytest.param(UpstreamTimeoutError("slow"), 0, 2, 120, 0.5, Decision(GIVE_UP), id="timeout-never"),
    pytest.param(UpstreamRejectedError("bad"), 0, 2, 120, 0.5, Decision(GIVE_UP), id="4xx-never"),
    pytest.param(UpstreamError("auth", retryable=False), 0, 2, 120, 0.5, Decision(GIVE_UP), id="not-retryable"),
    pytest.param(loading(0.2), 0, 0, 120, 0.5, Decision(WAIT, 0.2), id="loading-estimated-time"),
    pytest.param(loading(None), 0, 0, 120, 0.5, Decision(WAIT, 2.0), id="loading-no-hint"),
    pytest.param(loading(300.0), 0, 0, 120, 0.5, Decision(WAIT, 20.0), id="loading-sleep-capped"),
    pytest.param(loading(5.0), 0, 0, 1.5, 0.5, Decision(WAIT, 1.5), id="loading-budget-nearly-out"),
    pytest.param(loading(0.0), 0, 0, 120, 0.5, Decision(WAIT, 0.05), id="loading-minimum-pause"),
    pytest.param(loading(5.0), 3, 2, 0.0, 0.5, Decision(GIVE_UP), id="loading-budget-out"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "attempt", "retries_left", "loading_left", "jitter", "expected"), CASES
)
def test_decide(
    error: UpstreamError,
    attempt: int,
    retries_left: int,
    loading_left: float,
    jitter: float,
    expected: Decision,
) -> None:
    decision = decide(
        error, attempt=attempt, retries_left=retries_left, loading_left=loading_left, jitter=jitter
    )
    assert decision.action is expected.action
    assert decision.delay == pytest.approx(expected.delay)
