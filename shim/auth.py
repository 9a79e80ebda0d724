"""Client API keys (compared in constant time) with their model allow-lists and limits.

Keys are config (``Keyring``, rebuilt on reload); the rate windows that enforce ``rpm`` and
``tpm`` are ``shim.state.rate``'s, kept by key name across reloads (``shim.live``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from shim.config import ServerConfig
from shim.errors import AuthenticationError


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
