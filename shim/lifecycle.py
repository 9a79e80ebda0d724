"""Signals: SIGTERM marks the server draining (``/ready`` → 503) before uvicorn's own handler
stops it; SIGHUP reloads the config, keeping the current one if the new one is invalid."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from shim.config import ConfigError
from shim.loader import load_config
from shim.services import Services

log = logging.getLogger("shim")


def reload_config(services: Services) -> bool:
    """Load the config file again and swap it in whole; False if it was rejected.

    Live state and what discovery learned are kept for whatever did not change; what a new or
    changed model needs is learned in the background.
    """
    try:
        config = load_config(services.active.config.source)
        active = services.state.activate(config, previous=services.active.config)
    except ConfigError as exc:
        log.error("reload rejected, keeping the current config: %s", exc)
        return False
    services.active = active
    services.discovery.relearn(active)
    log.info("config reloaded: %d models", len(active.router.routes))
    return True


def install_signal_handlers(services: Services) -> Callable[[], None]:
    """Install the handlers; returns what restores the previous ones."""
    installed: dict[int, Any] = {}
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: FrameType | None) -> None:
            services.draining = True
            log.info("SIGTERM: draining")
            if callable(previous):
                previous(signum, frame)

        installed[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: reload_config(services))
        installed[signal.SIGHUP] = None
    except (ValueError, RuntimeError, NotImplementedError):
        # Not the main thread (e.g. under a test client): no signal handling.
        pass

    def restore() -> None:
        for sig, handler in installed.items():
            if sig == signal.SIGHUP:
                asyncio.get_running_loop().remove_signal_handler(sig)
            elif handler is not None:
                signal.signal(sig, handler)

    return restore
