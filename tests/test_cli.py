"""`shim serve` as a user runs it: the example config serves /v1/models as-is; several workers
each serve (a socket each), share their metrics, reload and stop together; SIGTERM drains and
exits cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, serve_asgi
from tests.fake_hf import FakeHF

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def shim_process(config: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shim",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            *args,
        ],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(process.stdout.read().decode() if process.stdout else "exited")
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("shim did not become ready in 30 s")
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def test_example_config_serves_models_without_any_token() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "MY_ENDPOINT_TOKEN")}
    with shim_process(ROOT / "config.example.toml", env=env) as base:
        r = httpx.get(f"{base}/v1/models", timeout=5)
        assert r.status_code == 200
        assert {m["id"] for m in r.json()["data"]} == {
            "llama-3.1-8b",
            "my-endpoint",
            "flan-t5",
            "bge-small",
            "bge-reranker",
        }
        assert httpx.get(f"{base}/health", timeout=5).json() == {"status": "ok"}


@contextlib.asynccontextmanager
async def _fake() -> AsyncIterator[str]:
    async with serve_asgi(FakeHF().asgi) as url:
        yield url


async def _spawn_shim(config: Path, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    """``shim serve`` in a subprocess, returned once ``/ready`` answers 200 (or after 30 s)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shim", "serve", "--config", str(config), "--port", str(port),
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/ready")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
    return process, base


def _chat_requests_by_pid(metrics_dir: Path) -> dict[int, float]:
    """Successful chat requests per worker, from prometheus-client's per-process files."""
    from prometheus_client.mmap_dict import MmapedDict

    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        counts[pid] = sum(
            value
            for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
            if json.loads(key)[1] == "shim_requests_total"
            and json.loads(key)[2].get("endpoint") == "chat"
        )
    return counts


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


MODEL = 'task = "text-generation"\nurl = "{upstream}"\nchat_template = "chatml"\n'


async def test_workers_each_serve_share_metrics_reload_and_stop_together(tmp_path: Path) -> None:
    async with _fake() as upstream:
        config = tmp_path / "shim.toml"
        config.write_text("[models.m]\n" + MODEL.format(upstream=upstream))
        temp = Path(os.environ.get("TMPDIR", "/tmp"))
        before = set(temp.glob("shim-metrics-*"))
        process, base = await _spawn_shim(config, "--workers", "2")
        try:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            # New connections, spread by the kernel over the workers' sockets.
            for _ in range(40):
                async with httpx.AsyncClient(base_url=base, timeout=5) as fresh:
                    assert (await fresh.post("/v1/chat/completions", json=body)).status_code == 200
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                text = (await client.get("/metrics")).text
            line = next(
                ln for ln in text.splitlines()
                if ln.startswith('shim_requests_total{endpoint="chat",model="m",status="200"}')
            )  # fmt: skip
            assert float(line.rsplit(" ", 1)[1]) == 40
            (metrics_dir,) = set(temp.glob("shim-metrics-*")) - before
            by_pid = _chat_requests_by_pid(metrics_dir)
            workers = [pid for pid, count in by_pid.items() if count]
            assert len(workers) == 2 and process.pid not in workers, by_pid
            assert sum(by_pid.values()) == 40

            # SIGHUP to the parent reloads every worker.
            config.write_text(
                "[models.m]\n" + MODEL.format(upstream=upstream)
                + "[models.m2]\n" + MODEL.format(upstream=upstream)
            )  # fmt: skip
            process.send_signal(signal.SIGHUP)
            assert await _all_workers_list(base, "m2"), "a worker did not reload"
        finally:
            process.send_signal(signal.SIGTERM)
            output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
        assert process.returncode == 0, output
        assert "Traceback" not in output
        assert "SO_REUSEPORT" in output
        assert not [pid for pid in workers if _alive(pid)], "SIGTERM stops every worker"
        assert not metrics_dir.exists(), "the multiprocess directory is removed"


async def _all_workers_list(base: str, model: str) -> bool:
    """Whether 10 requests in a row, each on a new connection, list ``model`` (within 20 s)."""
    in_a_row = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and in_a_row < 10:
        async with httpx.AsyncClient(base_url=base, timeout=5) as fresh:
            models = {m["id"] for m in (await fresh.get("/v1/models")).json()["data"]}
        in_a_row = in_a_row + 1 if model in models else 0
        if not in_a_row:
            await asyncio.sleep(0.1)
    return in_a_row >= 10


def test_workers_on_a_port_in_use_fail_at_once(tmp_path: Path) -> None:
    config = tmp_path / "shim.toml"
    config.write_text("[models.m]\n" + MODEL.format(upstream="http://127.0.0.1:9"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "shim", "serve", "--config", str(config),
             "--port", str(port), "--workers", "2"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode != 0
    assert "cannot listen" in result.stderr


@pytest.mark.parametrize("argv", [["serve"], ["check"]])
def test_missing_config_is_a_clear_error(argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SHIM_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "shim", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "no config" in result.stderr


async def test_sigterm_lets_inflight_streams_finish(tmp_path: Path) -> None:
    from tests.fake_hf import Reply, sse, tgi_stream_events

    fake = FakeHF()
    fake.script("/generate_stream", Reply(chunks=sse(*tgi_stream_events(["x"] * 20)), delay=0.05))
    async with serve_asgi(fake.asgi) as upstream:
        config = tmp_path / "shim.toml"
        config.write_text(
            '[server]\ndrain_timeout = 10\n[models.m]\ntask = "text-generation"\n'
            f'url = "{upstream}"\nchat_template = "chatml"\n'
        )
        process, base = await _spawn_shim(config)
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                body = {
                    "model": "m",
                    "messages": [{"role": "user", "content": "hi"}],
                    "stream": True,
                }
                chunks: list[str] = []
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    async for text in response.aiter_text():
                        if not chunks:
                            process.send_signal(signal.SIGTERM)  # mid-stream
                        chunks.append(text)
            text = "".join(chunks)
            output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert text.count('"content":"x"') == 20, text[-300:]
    assert text.endswith("data: [DONE]\n\n")
    # uvicorn re-raises the signal once drained: the conventional exit status for SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output
    assert "draining" in output


@pytest.mark.parametrize("freeze_gc", [False, True], ids=["tests", "shim-serve"])
async def test_startup_heap_is_frozen_only_where_shim_serve_runs(freeze_gc: bool) -> None:
    # `shim serve` builds its app with freeze_gc=True (shim.workers.served_app); a test process
    # builds many apps and must be able to collect them.
    from litestar.testing import AsyncTestClient
    from prometheus_client import CollectorRegistry

    from shim.app import create_app
    from tests.conftest import make_config

    before = gc.get_freeze_count()
    app = create_app(make_config(), registry=CollectorRegistry(), freeze_gc=freeze_gc)
    try:
        async with AsyncTestClient(app=app):
            frozen = gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
    assert frozen is freeze_gc
