"""Client API keys (compared in constant time), per-key model allow-lists and rate limits.

Rate limits live in this process's memory: with several workers or replicas each enforces its
own share (documented in README "Security").
"""

from __future__ import annotations

import hmac
import time
from collections import deque

from shim.config import ServerConfig
from shim.errors import AuthenticationError, RateLimitError


class KeyInfo:
    __slots__ = ("_minute_requests", "_minute_tokens", "models", "name", "rpm", "secret", "tpm")

    def __init__(
        self,
        secret: str,
        name: str,
        models: frozenset[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> None:
        self.secret = secret.encode()
        self.name = name
        self.models = models
        self.rpm = rpm
        self.tpm = tpm
        self._minute_requests: deque[float] = deque()
        self._minute_tokens: deque[tuple[float, int]] = deque()

    def admit(self, now: float | None = None) -> None:
        """Count one request; 429 with Retry-After when over ``rpm`` or ``tpm``."""
        if self.rpm is None and self.tpm is None:
            return
        now = time.monotonic() if now is None else now
        horizon = now - 60.0
        requests, tokens = self._minute_requests, self._minute_tokens
        while requests and requests[0] <= horizon:
            requests.popleft()
        while tokens and tokens[0][0] <= horizon:
            tokens.popleft()
        if self.rpm is not None and len(requests) >= self.rpm:
            raise RateLimitError(
                f"Rate limit reached for key `{self.name}`: {self.rpm} requests per minute.",
                retry_after=max(1.0, requests[0] - horizon),
            )
        if self.tpm is not None and sum(n for _, n in tokens) >= self.tpm:
            raise RateLimitError(
                f"Rate limit reached for key `{self.name}`: {self.tpm} tokens per minute.",
                code="tokens_rate_limit_exceeded",
                retry_after=max(1.0, tokens[0][0] - horizon),
            )
        requests.append(now)

    def spend(self, tokens: int, now: float | None = None) -> None:
        if self.tpm is not None and tokens > 0:
            self._minute_tokens.append((time.monotonic() if now is None else now, tokens))


class Keyring:
    """The configured client keys; empty = no authentication."""

    def __init__(self, server: ServerConfig) -> None:
        keys = [KeyInfo(k, f"key-{i}") for i, k in enumerate(server.api_keys) if k]
        keys += [
            KeyInfo(
                k.key,
                k.name,
                frozenset(k.models) if k.models is not None else None,
                k.rpm,
                k.tpm,
            )
            for k in server.keys
            if k.key
        ]
        self.keys = keys
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
