"""What the app shares, built once per process: the upstream client, metrics, the clock, the
live state, what discovery learned, the stored state (responses; Redis rate windows) and the
active config (replaced whole on reload)."""

from __future__ import annotations

from dataclasses import dataclass

from shim.clock import Clock
from shim.discovery import Discovery
from shim.live import Active, LiveState
from shim.metrics import Metrics
from shim.state import State
from shim.upstream.client import Client


@dataclass(slots=True)
class Services:
    client: Client
    metrics: Metrics
    clock: Clock
    state: LiveState
    discovery: Discovery
    # ``[state]`` as it was at startup (a reload does not move stored responses).
    stored: State
    # A request reads it once and keeps what it read, whatever a reload does meanwhile.
    active: Active
    draining: bool = False
    ready: bool = False
