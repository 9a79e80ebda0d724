"""Shared state in Redis (redis-py's asyncio client, the ``[redis]`` extra): every worker and
replica sees every response and counts against the same rate windows.

Responses: one key per response under ``key_prefix``, with the response TTL as the key's own
expiry. Rate windows: the sliding windows of ``state.rate``, each check-and-count one Lua
script (atomic on the server), timed by the server's clock unless ``now`` is given; one key's
entries share a hash slot (``{name}``), so this also works on Redis Cluster.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import redis.asyncio
import redis.exceptions

from shim.errors import StateUnavailableError
from shim.state._batch import BatchedStore, Row
from shim.state._store import Clock
from shim.state.rate import WINDOW, rate_limited


@contextlib.contextmanager
def _reached() -> Iterator[None]:
    """Redis failures (connection refused, timeouts, a server error) as shim's 503."""
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise StateUnavailableError(
            f"The shared state (Redis) is unavailable: {type(exc).__name__}."
        ) from None


class RedisStore(BatchedStore):
    def __init__(
        self, client: redis.asyncio.Redis, *, prefix: str, ttl: float, clock: Clock = time.time
    ) -> None:
        super().__init__(ttl=ttl, clock=clock)
        self._client = client
        self._prefix = prefix + "response:"

    async def _put_rows(self, rows: list[Row]) -> list[None]:
        """One round of writes: one pipeline (one round trip, no transaction)."""
        now = self.clock()
        pipe = self._client.pipeline(transaction=False)
        for key, blob, expires_at in rows:
            milliseconds = max(1, round((expires_at - now) * 1000))
            pipe.set(self._prefix + key, blob, px=milliseconds)  # type: ignore[unused-awaitable]
        with _reached():
            await pipe.execute()
        return [None] * len(rows)

    async def _fetch_rows(self, keys: list[str]) -> list[bytes | None]:
        """One round of reads: one ``MGET``."""
        with _reached():
            blobs = await self._client.mget([self._prefix + key for key in keys])
        # (str only if the client was made with decode_responses, which shim never does.)
        return [blob.encode() if isinstance(blob, str) else blob for blob in blobs]

    async def _remove(self, key: str) -> None:
        with _reached():
            await self._client.delete(self._prefix + key)


# KEYS: requests (zset: seq -> time), tokens (zset: "seq:n" -> time), the tokens' sum, a seq.
# ARGV: now ("" = the server's clock), rpm (-1 = none), tpm (-1 = none), window seconds.
# Returns {"ok"|"rpm"|"tpm", seconds until the oldest entry leaves (as a string)}.
_ADMIT = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local rpm, tpm, window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local horizon = now - window
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon)
if #gone > 0 then
  local n = 0
  for _, member in ipairs(gone) do n = n + tonumber(string.match(member, ':(%d+)$')) end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', horizon)
  redis.call('DECRBY', KEYS[3], n)
end
local function wait(key)
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if oldest[2] then return tostring(tonumber(oldest[2]) - horizon) end
  return tostring(window)
end
if rpm >= 0 and redis.call('ZCARD', KEYS[1]) >= rpm then return {'rpm', wait(KEYS[1])} end
if tpm >= 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= tpm then
  return {'tpm', wait(KEYS[2])}
end
if rpm >= 0 then
  redis.call('ZADD', KEYS[1], now, redis.call('INCR', KEYS[4]))
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  redis.call('PEXPIRE', KEYS[4], math.ceil(window * 1000))
end
return {'ok', '0'}
"""

# KEYS as above (tokens, sum, seq); ARGV: now, tokens, window seconds.
_SPEND = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local ttl = math.ceil(tonumber(ARGV[3]) * 1000)
redis.call('ZADD', KEYS[1], now, redis.call('INCR', KEYS[3]) .. ':' .. ARGV[2])
redis.call('INCRBY', KEYS[2], ARGV[2])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
return 1
"""


class RedisRateWindow:
    def __init__(self, windows: RedisRateWindows, name: str, rpm: int | None, tpm: int | None):
        self.name, self.rpm, self.tpm = name, rpm, tpm
        self._windows = windows
        base = f"{windows.prefix}rate:{{{name}}}:"
        self._keys = [base + "requests", base + "tokens", base + "spent", base + "seq"]

    async def admit(self, now: float | None = None) -> None:
        if self.rpm is None and self.tpm is None:
            return
        rpm = -1 if self.rpm is None else self.rpm
        tpm = -1 if self.tpm is None else self.tpm
        args: list[str | int | float] = ["" if now is None else repr(now), rpm, tpm, WINDOW]
        with _reached():
            verdict, wait = await self._windows.admit_script(keys=self._keys, args=args)
        kind = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
        if kind != "ok":
            limit = self.rpm if kind == "rpm" else self.tpm
            raise rate_limited(self.name, kind, limit or 0, float(wait))

    async def spend(self, tokens: int, now: float | None = None) -> None:
        if self.tpm is None or tokens <= 0:
            return
        args: list[str | int | float] = ["" if now is None else repr(now), tokens, WINDOW]
        with _reached():
            await self._windows.spend_script(keys=self._keys[1:], args=args)


class RedisRateWindows:
    """Windows in Redis under ``prefix``; the scripts are loaded once (EVALSHA)."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str) -> None:
        self.prefix = prefix
        self.admit_script = client.register_script(_ADMIT)
        self.spend_script = client.register_script(_SPEND)

    def window(self, name: str, *, rpm: int | None, tpm: int | None) -> RedisRateWindow:
        return RedisRateWindow(self, name, rpm, tpm)
