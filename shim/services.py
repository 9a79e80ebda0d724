"""What handlers share, built once per app: the router, the upstream client, metrics, keys,
the scrubber of upstream text."""

from __future__ import annotations

from dataclasses import dataclass, field

from shim.auth import Keyring
from shim.config import Config
from shim.metrics import Metrics
from shim.redact import Scrubber
from shim.routing import Router
from shim.upstream import Upstream


@dataclass(slots=True)
class Services:
    config: Config
    # Replaced whole on reload; a request keeps the Route it resolved.
    router: Router
    upstream: Upstream
    metrics: Metrics
    keyring: Keyring
    # Built from the config's secrets; replaced whole on reload, as the router is.
    scrubber: Scrubber
    draining: bool = False
    ready: bool = False
    reloads: int = field(default=0)
