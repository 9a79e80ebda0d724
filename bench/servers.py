"""Starting the servers under test, each in its own process on 127.0.0.1: the fake upstream,
shim (``shim serve``, 1 or N workers) and LiteLLM's proxy. Each returns once it answers.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from bench import procs
from bench.runner import HOST, Target
from bench.scenarios import ShimConfig

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


REPO = Path(__file__).resolve().parent.parent
#: Where the shim package to run lives, when not the installed one (see ``shim_env``).
SOURCE_ENV = "BENCH_SHIM_SOURCE"


def extract_shim(ref: str, work: Path) -> tuple[Path, str]:
    """shim's package as of git ``ref``, unpacked under ``work``; (directory, short sha).

    Put on ``PYTHONPATH``, it is imported instead of the installed (working tree) copy, so a
    run measures exactly one commit."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", ref], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()
    target = work / f"shim-{sha}"
    target.mkdir()
    archive = subprocess.run(
        ["git", "archive", sha, "shim"], capture_output=True, check=True, cwd=REPO
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target, sha


def installed_shim_sha() -> str | None:
    """HEAD's short sha, with ``+dirty`` when shim's files in the work tree differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False, cwd=REPO)
        return done.stdout.strip()

    sha = git("rev-parse", "--short", "HEAD")
    if not sha:
        return None
    return sha + ("+dirty" if git("status", "--porcelain", "--", "shim") else "")


def shim_env(source: Path | None) -> dict[str, str]:
    """The environment of a shim process: ``source`` first on the path when given."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
        # For ``python -m`` launches, whose sys.path starts with the working directory.
        env[SOURCE_ENV] = str(source)
    return env


def _source_cwd(source: Path | None) -> Path | None:
    # ``python -m shim`` and ``python -c`` put the working directory first on sys.path, where
    # the repository's own shim would shadow ``source``: run them from its parent instead.
    return source.parent if source is not None else None


_CONFIG_PROBE = """
import json, sys
from shim.config import ConfigError
try:
    from shim.loader import parse_config
except ImportError:  # a shim from before the loader had its own module
    from shim.config import parse_config
verdicts = {}
for name, text in json.load(sys.stdin).items():
    try:
        parse_config(text, source='shim.toml')
    except ConfigError as exc:
        verdicts[name] = str(exc)
    else:
        verdicts[name] = None
print(json.dumps(verdicts))
"""


def config_support(parts: dict[str, str], source: Path | None) -> dict[str, str | None]:
    """Which configs (by name) the shim under test accepts: None, else why not (its
    ``ConfigError``, or why it could not be asked)."""
    done = subprocess.run(
        [sys.executable, "-c", _CONFIG_PROBE],
        input=json.dumps(parts),
        capture_output=True,
        text=True,
        check=False,
        env=shim_env(source),
        cwd=_source_cwd(source),
        timeout=60,
    )
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return dict.fromkeys(parts, f"config check failed: {why}")
    verdicts: dict[str, str | None] = json.loads(done.stdout)
    return verdicts


def start_shim(
    work: Path,
    config: Path,
    fake_ports: dict[str, int],
    *,
    workers: int,
    source: Path | None = None,
    variant: ShimConfig = "default",
) -> Target:
    """``shim serve --config <config> --port P --workers N``, ready when every worker is up;
    ``source``: a directory holding the ``shim`` package to run instead of the installed one;
    ``variant``: which config this process has (its log file; same target key and label)."""
    port = procs.free_port()
    argv = [*_shim_command(), "serve", "--config", str(config), "--port", str(port)]
    argv += ["--workers", str(workers)]
    env = shim_env(source)
    label = f"shim ({workers} worker{'s' if workers > 1 else ''})"
    log = work / f"shim-{workers}w{'' if variant == 'default' else '-' + variant}.log"
    proc = procs.start(label, argv, log=log, env=env, cwd=_source_cwd(source))
    try:
        procs.wait_http(f"http://{HOST}:{port}/health", proc, timeout=READY_TIMEOUT)
    except RuntimeError:
        proc.stop()
        raise
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
