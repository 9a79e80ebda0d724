"""Client API keys (compared in constant time) with their model allow-lists and limits, and
the per-key rate windows that enforce ``rpm`` and ``tpm``.

Keys are config (``Keyring``, rebuilt on reload); windows are live state, kept across a reload
for every key whose name and limits did not change (``shim.live``). They live in this
process's memory: with several workers or replicas each enforces its own share (README
"Security").
"""

from __future__ import annotations

import hmac
from collections import deque
from dataclasses import dataclass

from shim.config import ServerConfig
from shim.errors import AuthenticationError, RateLimitError

WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class KeyInfo:
    secret: bytes
    name: str
    models: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    def allows(self, model: str) -> bool:
        """Whether this key may use ``model``: other models answer as ones that do not exist."""
        return self.models is None or model in self.models


class RateWindows:
    """One key's requests and tokens of the last minute."""

    __slots__ = ("_requests", "_tokens", "key")

    def __init__(self, key: KeyInfo) -> None:
        self.key = key
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, int]] = deque()

    def admit(self, now: float) -> None:
        """Count one request; 429 with Retry-After when over ``rpm`` or ``tpm``."""
        key = self.key
        horizon = now - WINDOW
        requests, tokens = self._requests, self._tokens
        while requests and requests[0] <= horizon:
            requests.popleft()
        while tokens and tokens[0][0] <= horizon:
            tokens.popleft()
        if key.rpm is not None and len(requests) >= key.rpm:
            raise RateLimitError(
                f"Rate limit reached for key `{key.name}`: {key.rpm} requests per minute.",
                retry_after=max(1.0, requests[0] - horizon),
            )
        if key.tpm is not None and sum(n for _, n in tokens) >= key.tpm:
            raise RateLimitError(
                f"Rate limit reached for key `{key.name}`: {key.tpm} tokens per minute.",
                code="tokens_rate_limit_exceeded",
                retry_after=max(1.0, tokens[0][0] - horizon),
            )
        requests.append(now)

    def spend(self, tokens: int, now: float) -> None:
        if self.key.tpm is not None and tokens > 0:
            self._tokens.append((now, tokens))


class Keyring:
    """The configured client keys; empty = no authentication."""

    def __init__(self, server: ServerConfig) -> None:
        keys = [KeyInfo(k.encode(), f"key-{i}") for i, k in enumerate(server.api_keys) if k]
        keys += [
            KeyInfo(
                k.key.encode(),
                k.name,
                frozenset(k.models) if k.models is not None else None,
                k.rpm,
                k.tpm,
            )
            for k in server.keys
            if k.key
        ]
        self.keys = tuple(keys)
        # Keys were configured but all expanded to empty strings: fail closed.
        self.enabled = bool(server.api_keys or server.keys)

    def authenticate(self, authorization: bytes | None) -> KeyInfo | None:
        """The key for an ``Authorization: Bearer`` header value; 401 when it matches none."""
        if not self.enabled:
            return None
        if not authorization or not authorization[:7].lower() == b"bearer ":
            raise AuthenticationError(
                "Missing API key: send `Authorization: Bearer <key>`.", code="missing_api_key"
            )
        presented = authorization[7:].strip()
        found: KeyInfo | None = None
        # Compare against every key, so timing does not reveal which (or whether one) matched.
        for key in self.keys:
            if hmac.compare_digest(presented, key.secret) and found is None:
                found = key
        if found is None:
            raise AuthenticationError("Incorrect API key provided.")
        return found
