"""A reply's lifetime (``shim.serve.dispatch``): whatever way it ends, everything it held is
released: the model's concurrency slot, the in-flight gauge, the upstream's in-flight count."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from shim.app import create_app
from shim.services import Services
from tests.conftest import FAKE, make_config, serve_asgi
from tests.fake_clock import until
from tests.fake_hf import FakeHF, Reply, sse, tgi_stream_events

USER = [{"role": "user", "content": "Hi"}]
MODEL = (
    f'[models.m]\ntask = "text-generation"\nurl = "{FAKE}/tgi"\nchat_template = "chatml"\n'
    "retries = 0\nmax_concurrency = 1\nmax_queue = 0\n"
)
FIRST = tgi_stream_events(["a"])[0]
ENDINGS = [
    pytest.param(False, Reply(json={"generated_text": "x"}), 200, id="answer"),
    pytest.param(False, Reply(500, body=b"down"), 502, id="error-before-any-byte"),
    pytest.param(False, Reply(json={"nothing": True}), 502, id="invalid-answer"),
    pytest.param(True, Reply(chunks=sse(*tgi_stream_events(["a", "b"]))), 200, id="stream"),
    pytest.param(True, Reply(chunks=sse({"error": "bad", "error_type": "generation"})), 502, id="stream-error-first"),
    pytest.param(True, Reply(chunks=sse(FIRST, {"error": "oom", "error_type": "generation"})), 200, id="stream-error-after-first-byte"),
    pytest.param(True, Reply(chunks=sse(FIRST)), 200, id="stream-cut-short"),
]  # fmt: skip


class Served:
    def __init__(self, base: str, services: Services, registry: CollectorRegistry) -> None:
        self.base, self.services, self.registry = base, services, registry

    def held(self) -> tuple[float, list[int]]:
        """The in-flight gauge, and each upstream's in-flight count."""
        gauge = self.registry.get_sample_value("shim_in_flight_requests", {"model": "m"})
        states = self.services.active.pools["m"].states
        return gauge or 0.0, [state.in_flight for state in states]


@contextlib.asynccontextmanager
async def served(fake: FakeHF, **server: Any) -> AsyncIterator[Served]:
    registry = CollectorRegistry()
    app = create_app(make_config(MODEL), transport=fake.transport(), registry=registry)
    async with serve_asgi(app, **server) as base:
        yield Served(base, app.state.shim, registry)


@pytest.mark.parametrize(("stream", "reply", "status"), ENDINGS)
async def test_every_ending_releases_what_the_reply_held(
    fake: FakeHF, stream: bool, reply: Reply, status: int
) -> None:
    fake.script("/tgi/generate_stream" if stream else "/tgi/generate", reply)
    body = {"model": "m", "messages": USER, "stream": stream}
    async with served(fake) as shim, httpx.AsyncClient(base_url=shim.base, timeout=10) as client:
        r = await client.post("/v1/chat/completions", json=body)
        assert r.status_code == status, r.text
        assert shim.held() == (0, [0])
        # The slot is free again: the next request is served, not turned away (max_queue 0).
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        assert shim.held() == (0, [0])


async def test_a_stream_holds_all_of_it_until_the_client_leaves(fake: FakeHF) -> None:
    events = sse(*tgi_stream_events(["x"] * 200))
    fake.script("/tgi/generate_stream", Reply(chunks=events, delay=0.01))
    body = {"model": "m", "messages": USER, "stream": True}
    async with served(fake) as shim, httpx.AsyncClient(base_url=shim.base, timeout=10) as client:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            async for _ in response.aiter_bytes():
                break  # the first chunk
            assert shim.held() == (1, [1])
            r = await client.post("/v1/chat/completions", json=body)
            assert r.status_code == 429  # the slot is the stream's
        # The client went away mid-stream.
        await until(lambda: shim.held() == (0, [0]))
        r = await client.post("/v1/chat/completions", json={**body, "stream": False})
        assert r.status_code == 200
