"""Processes the benchmark starts, and what it reads about them from ``/proc``.

Every process is started through ``start`` and stopped by its own pid (SIGTERM, then SIGKILL),
in ``stop_all`` at the latest (registered with ``atexit``). CPU time and memory are read from
``/proc/<pid>/stat`` and ``/proc/<pid>/status`` for the process and all its descendants.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# No proxy from the environment: the benchmark talks to loopback only.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_started: list[Proc] = []


class Proc:
    """A child process started by the benchmark, with its output in ``log``."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path | None) -> None:
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.log = log

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[int]:
        """This process and its live descendants (uvicorn's workers, for instance)."""
        return [self.pid, *descendants(self.pid)]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by pid, SIGKILL after ``timeout``; the process group is never touched."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in reversed(self.tree()):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.popen.wait(5)
        if self in _started:
            _started.remove(self)

    def tail(self, lines: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start(
    name: str,
    argv: Sequence[str],
    *,
    log: Path | None,
    env: Mapping[str, str] | None = None,
    stdout_pipe: bool = False,
    cwd: Path | None = None,
) -> Proc:
    """Start ``argv``; stderr (and stdout unless piped) go to ``log``."""
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - kept open
    popen = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE if stdout_pipe else out,
        stderr=out,
        stdin=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        cwd=cwd,
    )
    proc = Proc(name, popen, log)
    _started.append(proc)
    return proc


def stop_all() -> None:
    for proc in list(reversed(_started)):
        proc.stop()


atexit.register(stop_all)


# --- /proc readings ---------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid``, found by scanning ``/proc/*/stat`` parent ids."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        children = parents.get(queue.pop(), [])
        found.extend(children)
        queue.extend(children)
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU of ``pids`` (and of their reaped children), in seconds."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime, stime, cutime, cstime are fields 14-17 of stat(5); here offset by 3.
        ticks += sum(int(f) for f in fields[11:15])
    return ticks / CLOCK_TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy / CLOCK_TICKS, (busy + idle + iowait) / CLOCK_TICKS


def wait_for_quiet(own_pids: Iterable[int], *, limit: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until other processes use under ``limit`` cores; returns
    the last reading, in cores."""
    pids = list(own_pids)
    deadline = time.monotonic() + max_wait
    while True:
        busy0, mine0 = machine_busy_seconds()[0], cpu_seconds(pids) + _self_cpu()
        time.sleep(0.5)
        busy1, mine1 = machine_busy_seconds()[0], cpu_seconds(pids) + _self_cpu()
        others = max(0.0, (busy1 - busy0) - (mine1 - mine0)) / 0.5
        if others < limit or time.monotonic() >= deadline:
            return others


def _self_cpu() -> float:
    usage = os.times()
    return usage.user + usage.system


def memory_kb(pid: int, field: str = "VmRSS") -> int:
    """A ``/proc/<pid>/status`` memory field (VmRSS, VmHWM) in kB; 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def reset_peak_rss(pids: Iterable[int]) -> bool:
    """Reset VmHWM to the current RSS (``clear_refs`` 5); False where not permitted."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


# --- ports and readiness ----------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks; released again before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, proc: Proc, *, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers (any HTTP status) or ``proc`` exits; raises on failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        try:
            with _opener.open(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout:g}s:\n{proc.tail()}")
