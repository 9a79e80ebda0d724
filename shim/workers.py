"""``shim serve``'s processes: one uvicorn server, or N worker processes with a listening socket
each (``SO_REUSEPORT``: the kernel spreads new connections over the workers evenly, where one
shared socket let whichever worker woke first take a whole burst). Every listening socket is
accepted by shim's own loop (``shim.connection.Acceptor``).

The parent binds the sockets (so a port in use fails at once, with a clear exit status), starts
the workers, forwards SIGTERM/SIGINT (drain) and SIGHUP (reload) to them, restarts nothing and
exits once they have all exited.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from litestar import Litestar

    from shim.config import ServerConfig

log = logging.getLogger("uvicorn.error")

# uvicorn's exit status when a server could not start.
STARTUP_FAILURE = 3
_STOP = (signal.SIGTERM, signal.SIGINT)
_FORWARDED = (*_STOP, signal.SIGHUP)


def served_app() -> Litestar:
    """The app as ``shim serve`` runs it (uvicorn's factory, in every worker)."""
    from shim.app import create_app

    return create_app(freeze_gc=True)


def uvicorn_config(server: ServerConfig, *, host: str, port: int, workers: int) -> uvicorn.Config:
    from shim.connection import uvicorn_options

    return uvicorn.Config(
        "shim.workers:served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        log_level=server.log_level,
        **uvicorn_options(server),
    )


def serve(config: uvicorn.Config) -> int:
    """Run until stopped; the exit status (0 after a requested stop)."""
    try:
        sockets = listen(config.host, config.port, config.workers)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", config.host, config.port, exc)
        return STARTUP_FAILURE
    if config.workers <= 1:
        from shim.connection import Server

        server = Server(config)
        log.info("Uvicorn running on http://%s (Press CTRL+C to quit)", _address(sockets[0]))
        server.run(sockets=sockets)
        return 0 if server.started else STARTUP_FAILURE
    return _Parent(config, sockets).run()


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to (host, port): one each with ``SO_REUSEPORT``, else one shared
    by all (as uvicorn does)."""
    if count == 1 or not hasattr(socket, "SO_REUSEPORT"):
        return [_bind(host, port, reuse_port=False)] * count
    if port:
        # Another server on this port with SO_REUSEPORT (a previous shim, say) would silently
        # share its connections with ours: a socket without the option finds it in the way.
        _bind(host, port, reuse_port=False).close()
    first = _bind(host, port, reuse_port=True)
    port = first.getsockname()[1]
    return [first, *(_bind(host, port, reuse_port=True) for _ in range(count - 1))]


def _bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _worker(config: uvicorn.Config, sock: socket.socket) -> None:
    """A worker process: uvicorn's server on its own socket."""
    from shim.connection import Server

    config.configure_logging()
    server = Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class _Parent:
    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        context = multiprocessing.get_context("spawn")
        self.processes = [
            context.Process(target=_worker, args=(config, sock), name=f"shim-worker-{i}")
            for i, sock in enumerate(sockets)
        ]
        self.sockets = sockets
        self.shared = len(set(sockets)) == 1
        self.address = _address(sockets[0])
        self.stopping = False

    def run(self) -> int:
        previous = {sig: signal.getsignal(sig) for sig in _FORWARDED}
        try:
            # The workers inherit an ignored SIGHUP (it survives exec) until the app installs
            # its reload handler: a reload sent while they start must not kill one.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            for sig in _STOP:
                signal.signal(sig, self._forward)
            for process in self.processes:
                process.start()
            signal.signal(signal.SIGHUP, self._forward)
            if self.stopping:  # (a stop that came while they started reached only some)
                self._signal(signal.SIGTERM)
            for sock in set(self.sockets):
                sock.close()  # the workers hold their own copies
            log.info(
                "Uvicorn running on http://%s with %d workers [%s] (parent %d)",
                self.address,
                len(self.processes),
                "one shared socket" if self.shared else "a socket each, SO_REUSEPORT",
                os.getpid(),
            )
            return self._wait()
        finally:
            for sig, handler in previous.items():
                if handler is not None:
                    signal.signal(sig, handler)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        if signum in _STOP:
            # Both mean drain; SIGTERM only, as a terminal's Ctrl-C already reached the
            # workers (one process group) and a second SIGINT forces uvicorn's exit.
            self.stopping = True
            signum = signal.SIGTERM
        self._signal(signum)

    def _signal(self, signum: int) -> None:
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signum)

    def _wait(self) -> int:
        status = 0
        pending: dict[Any, multiprocessing.process.BaseProcess] = {
            p.sentinel: p for p in self.processes
        }
        while pending:
            for sentinel in multiprocessing.connection.wait(list(pending)):
                process = pending.pop(sentinel)
                process.join()
                code = process.exitcode
                # uvicorn re-raises the signal it drained on: -SIGTERM is a clean stop.
                clean = code == 0 or (self.stopping and code in (-signal.SIGTERM, -signal.SIGINT))
                if not clean:
                    log.error("%s (pid %s) exited with status %s", process.name, process.pid, code)
                    status = status or (STARTUP_FAILURE if code == STARTUP_FAILURE else 1)
                if not self.stopping:
                    # Restarting is the supervisor's job (systemd, Kubernetes): stop the rest
                    # rather than serve on with fewer workers than configured.
                    self.stopping = True
                    self._signal(signal.SIGTERM)
        return status
