"""Shared fixtures: a fake HF upstream, configs from TOML snippets, the app under test."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry

from shim.app import create_app
from shim.clock import Clock
from shim.config import Config
from shim.loader import parse_config
from tests.fake_hf import FakeHF

FAKE = "http://fake-hf.test"

MODELS = f"""
[huggingface]
token = "hf_sekrit_default_token"
base_url = "{FAKE}"
hub_url = "{FAKE}/hub"

[models.tgi]
task = "text-generation"
url = "{FAKE}/tgi"
chat_template = "chatml"
retries = 0

[models.pipe]
task = "text-generation"
url = "{FAKE}/pipe"
protocol = "pipeline"
chat_template = "zephyr"
retries = 0

[models.t5]
task = "text2text-generation"
hf_model = "google/flan-t5-small"
# Counted by estimate: no Hub fetch at startup, so tests can assert a request made no calls
# (tests/test_token_counts.py covers the default, "auto").
tokenizer = "none"
retries = 0

[models.router]
task = "text-generation"
hf_model = "meta-llama/Llama-3.1-8B-Instruct"
retries = 0

[models.vllm]
task = "text-generation"
url = "{FAKE}/vllm/v1"
protocol = "openai"
hf_model = "served-name"
token = "hf_endpoint_token_xyz"
retries = 0

[models.raw]
task = "text-generation"
url = "{FAKE}/raw"
retries = 0
"""


#: Stored responses stay in the test's process (never the user's data directory).
MEMORY_STATE = '\n[state]\nbackend = "memory"\n'


def make_config(models: str = MODELS, server: str = "") -> Config:
    state = "" if "[state]" in models else MEMORY_STATE
    return parse_config(f"[server]\n{server}\n{models}{state}", source="test.toml", env={})


@pytest.fixture
def fake() -> FakeHF:
    return FakeHF()


@contextlib.asynccontextmanager
async def app_client(
    fake: FakeHF,
    config: Config | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(
        config or make_config(),
        transport=fake.transport(),
        registry=registry if registry is not None else CollectorRegistry(),
        clock=clock,
    )
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
async def client(fake: FakeHF) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with app_client(fake) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, log_level: str = "warning", **options: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on a real loopback socket in this event loop; yields its base URL."""
    port = free_port()
    settings = {"lifespan": "on", "loop": "asyncio", "http": "httptools", "interface": "asgi3"}
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level=log_level, **{**settings, **options}
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that answers with whatever bytes ``handler`` writes."""

    tasks: set[asyncio.Task[None]] = set()

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


@contextlib.asynccontextmanager
async def shim_server(
    fake: FakeHF,
    config: Config,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[str]:
    """shim on a real loopback socket (concurrent requests really run concurrently, unlike the
    in-process test client), its upstream the fake's MockTransport."""
    app = create_app(
        config,
        transport=fake.transport(),
        registry=registry or CollectorRegistry(),
        clock=clock,
    )
    async with serve_asgi(app) as base:
        yield base


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shim")
