"""wrk, the load generator for fixed-concurrency runs: installing it, scripting it, reading it.

wrk needs a Lua script to POST a body; the same script's ``done()`` hook prints the summary
and latency percentiles as one JSON line (``BENCH_JSON {...}``), so nothing is scraped from
wrk's human-readable output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.stats import LoadResult, Percentiles

_DONE_HOOK = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"count":%d,"mean":%.2f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    summary.requests, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def ensure_wrk(*, install: bool = True) -> str | None:
    """The wrk binary, installed from Debian's packages (as root) when missing; else None."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("bench: wrk is missing and cannot be installed here (needs root and apt-get)")
        return None
    print("bench: installing wrk (apt-get install -y wrk) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "install", "-y", "-qq", "wrk"],
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "wrk"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, check=False)
        if done.returncode == 0 and shutil.which("wrk"):
            return shutil.which("wrk")
    print(
        "bench: could not install wrk; falling back to the aiohttp load generator", file=sys.stderr
    )
    return None


def lua_script(body: bytes, *, method: str = "POST") -> str:
    """A wrk script sending ``body`` as JSON and printing the JSON summary at the end."""
    return (
        f"wrk.method = {json.dumps(method)}\n"
        f"wrk.body = {_lua_string(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + _DONE_HOOK
    )


def _lua_string(data: bytes) -> str:
    """A Lua long string that cannot be closed by the data itself."""
    text = data.decode()
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    # A long string drops a leading newline; the JSON bodies here have none.
    return f"[{eq}[{text}]{eq}]"


def run_wrk(
    wrk: str,
    url: str,
    body: bytes,
    *,
    connections: int,
    duration: float,
    script_dir: Path,
    threads: int = 1,
    timeout: float = 10.0,
) -> LoadResult:
    """Run wrk for ``duration`` seconds at ``connections`` and return what it measured."""
    script = script_dir / f"wrk-{abs(hash(body)) % 10**8}.lua"
    script.write_text(lua_script(body))
    seconds = max(1, round(duration))
    argv = [
        wrk,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout:g}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout + 30)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    lat = data["latency_us"]
    errors = {k: v for k, v in data["errors"].items() if v}
    return LoadResult(
        requests=data["requests"],
        errors=errors,
        duration=data["duration_us"] / 1e6,
        latency_ms=Percentiles(
            count=lat["count"],
            mean=lat["mean"] / 1000,
            p50=lat["p50"] / 1000,
            p90=lat["p90"] / 1000,
            p99=lat["p99"] / 1000,
            max=lat["max"] / 1000,
        ),
        tool="wrk",
        extra={"bytes": data["bytes"]},
    )
