"""Starting the servers under test, each in its own process on 127.0.0.1: the fake upstream,
shim (``shim serve``, 1 or N workers) and LiteLLM's proxy. Each returns once it answers.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from bench import procs
from bench.runner import HOST, Target

READY_TIMEOUT = 120.0
#: Port 9 (discard) on loopback: nothing listens there.
BLACKHOLE_PROXY = "http://127.0.0.1:9"


def start_fake(work: Path, *, token_delay_ms: float) -> tuple[procs.Proc, dict[str, int]]:
    """The fake upstream; returns it and its ports (``fast``, ``paced``)."""
    argv = [
        sys.executable,
        "-m",
        "bench.fake_upstream",
        "--token-delay-ms",
        str(token_delay_ms),
    ]
    proc = procs.start("fake upstream", argv, log=work / "fake.log", stdout_pipe=True)
    assert proc.popen.stdout is not None
    line = proc.popen.stdout.readline().decode()
    if not line:
        proc.stop()
        raise RuntimeError(f"the fake upstream did not start:\n{proc.tail()}")
    ports: dict[str, int] = json.loads(line)
    procs.wait_http(f"http://{HOST}:{ports['fast']}/health", proc, timeout=READY_TIMEOUT)
    return proc, ports


def _shim_command() -> list[str]:
    script = Path(sys.executable).with_name("shim")
    if script.exists():
        return [str(script)]
    found = shutil.which("shim")
    return [found] if found else [sys.executable, "-m", "shim"]


def start_shim(work: Path, config: Path, fake_ports: dict[str, int], *, workers: int) -> Target:
    """``shim serve --config <config> --port P --workers N``, ready when every worker is up."""
    port = procs.free_port()
    argv = [*_shim_command(), "serve", "--config", str(config), "--port", str(port)]
    argv += ["--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    label = f"shim ({workers} worker{'s' if workers > 1 else ''})"
    proc = procs.start(label, argv, log=work / f"shim-{workers}w.log", env=env)
    procs.wait_http(f"http://{HOST}:{port}/health", proc, timeout=READY_TIMEOUT)
    if workers > 1:
        deadline = time.monotonic() + READY_TIMEOUT
        while len(procs.descendants(proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
    time.sleep(1.0)  # let every worker finish its startup before the idle reading
    return Target(
        key=f"shim-{workers}w",
        label=label,
        kind="shim",
        fake_ports=fake_ports,
        port=port,
        proc=proc,
        workers=workers,
    )


def start_litellm(work: Path, binary: Path, config: Path, fake_ports: dict[str, int]) -> Target:
    """LiteLLM's proxy, one worker, offline (no Hub lookups, local cost map, no telemetry)."""
    port = procs.free_port()
    argv = [
        str(binary),
        "--config",
        str(config),
        "--host",
        HOST,
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--telemetry",
        "False",
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        # A safety net: any HTTP(S) request to a non-loopback host goes to a closed local port
        # (connection refused at once) instead of the network.
        **{name: BLACKHOLE_PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        **{name.lower(): BLACKHOLE_PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    proc = procs.start("LiteLLM", argv, log=work / "litellm.log", env=env)
    procs.wait_http(f"http://{HOST}:{port}/health/liveliness", proc, timeout=READY_TIMEOUT)
    time.sleep(1.0)
    return Target(
        key="litellm",
        label="LiteLLM (1 worker)",
        kind="litellm",
        fake_ports=fake_ports,
        port=port,
        proc=proc,
    )
