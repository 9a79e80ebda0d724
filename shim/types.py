"""ASGI type aliases, as starlette's ``types.py``: every ASGI edge of shim is typed with these.

Plain mappings rather than litestar's unions of HTTP and WebSocket message types: shim's ASGI
code serves HTTP only and reads messages by key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
