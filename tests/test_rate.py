"""Per-key rate windows, one table over the in-process and the Redis implementation (a real
redis-server), and a Redis window shared by two limiters as two processes would hold."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio

from shim.errors import RateLimitError
from shim.state import RateWindow, RateWindows
from shim.state import redis as shared
from shim.state.rate import LocalRateWindows
from tests.redis_server import redis_server

_prefixes = itertools.count()
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["local", "redis"])
async def windows(request: pytest.FixtureRequest) -> AsyncIterator[RateWindows]:
    if request.param == "local":
        yield LocalRateWindows()
        return
    client = redis.asyncio.Redis.from_url(request.getfixturevalue("redis_url"))
    yield shared.RedisRateWindows(client, prefix=f"rate{next(_prefixes)}:")
    await client.aclose()


async def _blocked(window: RateWindow, now: float) -> RateLimitError:
    with pytest.raises(RateLimitError) as info:
        await window.admit(now)
    return info.value


async def test_rpm(windows: RateWindows) -> None:
    window = windows.window("team-a", rpm=2, tpm=None)
    await window.admit(T0)
    await window.admit(T0 + 10)
    error = await _blocked(window, T0 + 30)
    assert error.code == "rate_limit_exceeded" and "2 requests per minute" in error.message
    # The first request leaves the window at T0 + 60: 30 seconds from now.
    assert error.retry_after == pytest.approx(30.0)
    await window.admit(T0 + 60)
    await _blocked(window, T0 + 69)
    await window.admit(T0 + 70.5)


async def test_tpm(windows: RateWindows) -> None:
    window = windows.window("team-b", rpm=None, tpm=100)
    await window.admit(T0)
    await window.spend(60, T0)
    await window.admit(T0 + 1)
    await window.spend(50, T0 + 20)
    error = await _blocked(window, T0 + 30)
    assert error.code == "tokens_rate_limit_exceeded" and "100 tokens per minute" in error.message
    assert error.retry_after == pytest.approx(30.0)
    # The first 60 tokens leave the window; the remaining 50 are under the limit.
    await window.admit(T0 + 60.5)
    await window.spend(50, T0 + 61)
    await _blocked(window, T0 + 62)
    await window.admit(T0 + 80.5)


async def test_no_limits_admit_everything(windows: RateWindows) -> None:
    window = windows.window("open", rpm=None, tpm=None)
    for i in range(50):
        await window.admit(T0 + i / 100)
        await window.spend(10**6, T0 + i / 100)


async def test_a_zero_limit_blocks_with_a_full_window(windows: RateWindows) -> None:
    error = await _blocked(windows.window("closed", rpm=0, tpm=None), T0)
    assert error.retry_after == pytest.approx(60.0)


async def test_keys_count_apart(windows: RateWindows) -> None:
    await windows.window("a", rpm=1, tpm=None).admit(T0)
    await windows.window("b", rpm=1, tpm=None).admit(T0)
    await _blocked(windows.window("a", rpm=1, tpm=None), T0 + 1)


async def test_a_window_keeps_its_counts_when_limits_change(windows: RateWindows) -> None:
    await windows.window("a", rpm=1, tpm=None).admit(T0)
    await windows.window("a", rpm=2, tpm=None).admit(T0 + 1)
    await _blocked(windows.window("a", rpm=2, tpm=None), T0 + 2)


async def test_two_redis_limiters_share_one_window(
    redis_url: str, redis_client: redis.asyncio.Redis
) -> None:
    prefix = f"rate{next(_prefixes)}:"
    other = redis.asyncio.Redis.from_url(redis_url)
    try:
        first = shared.RedisRateWindows(redis_client, prefix=prefix).window("k", rpm=3, tpm=50)
        second = shared.RedisRateWindows(other, prefix=prefix).window("k", rpm=3, tpm=50)
        await first.admit(T0)
        await second.admit(T0 + 1)
        await first.admit(T0 + 2)
        await _blocked(second, T0 + 3)
        await first.spend(50, T0 + 61.5)
        await _blocked(second, T0 + 62)
    finally:
        await other.aclose()


async def test_redis_uses_its_own_clock_when_no_time_is_given(
    redis_client: redis.asyncio.Redis,
) -> None:
    window = shared.RedisRateWindows(redis_client, prefix=f"rate{next(_prefixes)}:")
    limited = window.window("k", rpm=1, tpm=None)
    await limited.admit()
    with pytest.raises(RateLimitError) as info:
        await limited.admit()
    assert info.value.retry_after is not None and 59 <= info.value.retry_after <= 60
    ttl = await redis_client.pttl(f"{window.prefix}rate:{{k}}:requests")
    assert 0 < ttl <= 60_000
