"""A real ``redis-server`` (Debian's package) on a free loopback port, for the state tests:
no persistence, waited for with PING, killed at the end."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.conftest import free_port

BINARY = "redis-server"
_START_TIMEOUT = 10.0


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Yields the server's URL; skips the test when the binary is not installed."""
    binary = shutil.which(BINARY) or shutil.which(BINARY, path="/usr/bin:/usr/sbin")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package `redis-server`)")
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        argv = [binary, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
        argv += ["--port", str(port), "--dir", workdir]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + _START_TIMEOUT
            while not _pong(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer PING on port {port}")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.kill()
            process.wait(timeout=10)
