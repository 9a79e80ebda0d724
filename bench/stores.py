"""The response stores the Responses scenarios run shim with: a SQLite file in the run's
directory (the default config) and a redis-server the benchmark starts itself, on a free
loopback port, with nothing persisted (``--save "" --appendonly no``), stopped by its pid.
"""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.runner import HOST
from bench.scenarios import Scenario

BINARY = "/usr/bin/redis-server"  # Debian's redis-server package
START_TIMEOUT = 10.0


def binary() -> str | None:
    found = shutil.which("redis-server")
    return found or (BINARY if Path(BINARY).exists() else None)


def command(port: int, line: str, *, timeout: float = 2.0) -> str:
    """One inline command (``PING``, ``FLUSHALL``, ``DBSIZE``); the first line of its reply,
    e.g. ``+PONG`` or ``:42`` (bulk replies: their length line)."""
    with socket.create_connection((HOST, port), timeout=timeout) as conn:
        conn.sendall(line.encode() + b"\r\n")
        reply = b""
        while b"\r\n" not in reply:
            data = conn.recv(4096)
            if not data:
                break
            reply += data
    return reply.split(b"\r\n", 1)[0].decode(errors="replace")


@dataclass
class Redis:
    proc: procs.Proc
    port: int

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def flush(self) -> None:
        command(self.port, "FLUSHALL")

    def keys(self) -> int | None:
        reply = command(self.port, "DBSIZE")
        return int(reply[1:]) if reply.startswith(":") else None

    def stop(self) -> None:
        self.proc.stop()


def start_redis(work: Path, path: str) -> Redis:
    """``redis-server`` on a free loopback port; returns once it answers PING."""
    port = procs.free_port()
    argv = [path, "--save", "", "--appendonly", "no", "--bind", HOST, "--port", str(port)]
    argv += ["--dir", str(work)]
    proc = procs.start("redis-server", argv, log=work / "redis.log")
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if not proc.alive():
            raise RuntimeError(f"redis-server exited early:\n{proc.tail()}")
        try:
            if command(port, "PING") == "+PONG":
                return Redis(proc, port)
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"redis-server did not answer PING on port {port}")
        time.sleep(0.05)


def open_redis(
    work: Path,
    scenarios: list[Scenario],
    support: dict[str, str | None],
    results: dict[str, Any],
    *,
    shim_keys: list[str],
) -> Redis | None:
    """The redis-server of the Redis scenarios when they can run; else None, and their
    outcomes on shim (``shim_keys``) say why: no binary (skipped), or a shim without the
    Redis store config (n/a)."""
    if not scenarios:
        return None
    path = binary()
    why = support.get("state") or support.get("redis")
    if path is None:
        status, note = "skipped", f"redis-server is not installed ({BINARY})"
    elif why is not None:
        status, note = "n/a", f"shim has no Redis store config: {why}"
    else:
        redis = start_redis(work, path)
        results["redis"] = {"port": redis.port, "binary": path}
        return redis
    print(f"bench: {', '.join(s.id for s in scenarios)} {status}: {note}")
    for scenario in scenarios:
        for key in shim_keys:
            outcome = {"status": status, "note": note}
            results["scenarios"].setdefault(scenario.id, {})[key] = outcome
    return None


def sqlite_mb(db: Path) -> float | None:
    """Size of the SQLite store with its -wal and -shm files; None when shim wrote none."""
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    return round(size / 2**20, 1) if size else None
