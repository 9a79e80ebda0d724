"""Upstream faults, each with a scripted fake: loading, retries, failover, fallbacks, timeouts,
broken streams, client disconnects; and client keys, limits, CORS, reload, draining.

Waits that shim chooses (backoff, loading pauses, cooldowns, rate windows) run on a fake clock;
I/O deadlines (timeouts) and disconnects run on real time, kept short.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from shim.app import create_app
from shim.lifecycle import reload_config
from shim.loader import load_config
from tests.conftest import (
    FAKE,
    app_client,
    make_config,
    raw_server,
    read_request,
    serve_asgi,
    shim_server,
)
from tests.fake_clock import FakeClock, until
from tests.fake_hf import FakeHF, Reply, sse, tgi_stream_events

USER = [{"role": "user", "content": "Hi"}]
LOADING = Reply(503, json={"error": "Model org/m is currently loading", "estimated_time": 0.05})


def model(name: str, url: str, extra: str = "", task: str = "text-generation") -> str:
    return f'[models.{name}]\ntask = "{task}"\nurl = {url}\nchat_template = "chatml"\n{extra}\n'


def hf(base: str = FAKE) -> str:
    return f'[huggingface]\ntoken = "hf_resilience_token_1"\nbase_url = "{base}"\n'


# --- loading --------------------------------------------------------------------------------------


async def test_serverless_loading_is_waited_out_with_wait_header(fake: FakeHF) -> None:
    fake.script("/v1/chat/completions", LOADING, LOADING)
    models = hf() + '[models.s]\ntask = "text-generation"\nhf_model = "org/m"\nwait_for_model = 5\n'
    clock = FakeClock()
    async with app_client(fake, make_config(models), clock=clock) as client:
        r = await client.post("/v1/chat/completions", json={"model": "s", "messages": USER})
    assert r.status_code == 200, r.text
    assert clock.sleeps == [0.05, 0.05]  # the upstream's estimated_time, each time
    seen = fake.requests("/v1/chat/completions")
    assert len(seen) == 3
    assert "x-wait-for-model" not in seen[0].headers
    assert seen[-1].headers["x-wait-for-model"] == "true"


async def test_endpoint_scale_up_header(fake: FakeHF) -> None:
    url = '"http://xyz.us-east-1.aws.endpoints.huggingface.cloud"'
    fake.script("/generate", Reply(503, body=b"scaling up", headers={"retry-after": "0"}))
    clock = FakeClock()
    config = make_config(hf() + model("e", url, "wait_for_model = 30"))
    async with app_client(fake, config, clock=clock) as client:
        r = await client.post("/v1/chat/completions", json={"model": "e", "messages": USER})
    assert r.status_code == 200
    assert clock.sleeps == [0.05]  # Retry-After: 0, and the shortest pause
    assert fake.requests("/generate")[-1].headers["x-scale-up-timeout"] == "30"


async def test_loading_past_budget_is_503_with_retry_after(fake: FakeHF) -> None:
    fake.script("/generate", *([LOADING] * 50))
    models = hf() + model("e", f'"{FAKE}"', "wait_for_model = 0.3")
    clock = FakeClock()
    async with app_client(fake, make_config(models), clock=clock) as client:
        r = await client.post("/v1/chat/completions", json={"model": "e", "messages": USER})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "model_loading"
    assert int(r.headers["retry-after"]) >= 1
    # Waited out the whole budget, in the upstream's estimated_time steps, then gave up.
    assert 0.3 <= sum(clock.sleeps) < 0.36
    assert len(fake.requests("/generate")) == len(clock.sleeps) + 1


async def test_concurrent_requests_share_one_wake_up(fake: FakeHF) -> None:
    loading = Reply(503, json={"error": "Model m is currently loading", "estimated_time": 0.2})
    fake.script("/generate", loading, loading)
    models = hf() + model("e", f'"{FAKE}"', "wait_for_model = 10")
    body = {"model": "e", "messages": USER}
    clock = FakeClock(auto=False)
    async with (
        shim_server(fake, make_config(models), clock=clock) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        first = asyncio.create_task(client.post("/v1/chat/completions", json=body))
        await until(lambda: clock.sleeping == 1)  # the leader found the model loading
        others = [
            asyncio.create_task(client.post("/v1/chat/completions", json=body)) for _ in range(5)
        ]
        await until(lambda: clock.sleeping == 6)  # the followers wait for the leader
        assert len(fake.requests("/generate")) == 1
        clock.advance(0.2)  # the leader polls again: still loading
        await until(lambda: len(fake.requests("/generate")) == 2 and clock.sleeping == 6)
        clock.advance(0.2)  # the leader polls again: up
        responses = await asyncio.gather(first, *others)
    assert [r.status_code for r in responses] == [200] * 6
    # The leader: 2 loading answers then success; the 5 followers sent nothing while it was
    # waking, then one request each.
    assert len(fake.requests("/generate")) == 3 + 5


# --- retries, failover, fallbacks ----------------------------------------------------------------


async def test_5xx_and_429_are_retried_then_succeed(fake: FakeHF) -> None:
    fake.script(
        "/generate",
        Reply(500, body=b"x"),
        Reply(429, json={"error": "busy"}, headers={"retry-after": "0"}),
    )
    clock = FakeClock(jitter=0.5)
    config = make_config(hf() + model("e", f'"{FAKE}"', "retries = 2"))
    async with app_client(fake, config, clock=clock) as client:
        r = await client.post("/v1/chat/completions", json={"model": "e", "messages": USER})
    assert r.status_code == 200
    assert len(fake.requests("/generate")) == 3
    assert clock.sleeps == [0.25, 0.5]  # exponential backoff (jitter 1x)


async def test_4xx_is_not_retried(fake: FakeHF) -> None:
    fake.script("/generate", Reply(422, json={"error": "bad", "error_type": "validation"}))
    async with app_client(
        fake, make_config(hf() + model("e", f'"{FAKE}"', "retries = 2"))
    ) as client:
        r = await client.post("/v1/chat/completions", json={"model": "e", "messages": USER})
    assert r.status_code == 400
    assert len(fake.requests("/generate")) == 1


async def test_retries_exhausted_tells_clients_not_to_retry(fake: FakeHF) -> None:
    fake.script("/generate", *([Reply(500, body=b"down")] * 3))
    config = make_config(hf() + model("e", f'"{FAKE}"', "retries = 2"))
    async with app_client(fake, config, clock=FakeClock()) as client:
        r = await client.post("/v1/chat/completions", json={"model": "e", "messages": USER})
    assert r.status_code == 502
    assert r.headers["x-should-retry"] == "false"
    assert len(fake.requests("/generate")) == 3


async def test_failover_and_cooldown_across_upstreams(fake: FakeHF) -> None:
    fake.script("/a/generate", *([Reply(500, body=b"a is down")] * 20))
    urls = f'["{FAKE}/a", "{FAKE}/b"]'
    extra = "retries = 1\ncooldown_after = 2\ncooldown = 60"
    config = make_config(hf() + model("e", urls, extra))
    async with app_client(fake, config, clock=FakeClock()) as client:
        for _ in range(6):
            r = await client.post("/v1/chat/completions", json={"model": "e", "messages": USER})
            assert r.status_code == 200
    # `a` failed twice, was cooled down, and got no more traffic.
    assert len(fake.requests("/a/generate")) == 2
    assert len(fake.requests("/b/generate")) == 6


async def test_cooled_upstream_is_probed_back(fake: FakeHF) -> None:
    fake.script("/a/generate", Reply(500, body=b"x"))
    urls = f'["{FAKE}/a", "{FAKE}/b"]'
    extra = "retries = 1\ncooldown_after = 1\ncooldown = 60"
    clock = FakeClock()
    body = {"model": "e", "messages": USER}
    async with app_client(fake, make_config(hf() + model("e", urls, extra)), clock=clock) as client:
        for _ in range(3):
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        assert len(fake.requests("/a/generate")) == 1  # failed once, then rested
        clock.advance(61)
        for _ in range(4):
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
    assert len(fake.requests("/a/generate")) >= 2  # probed back once the cooldown ended


async def test_fallback_model_used_when_all_upstreams_fail(fake: FakeHF) -> None:
    fake.script("/a/generate", Reply(500, body=b"x"))
    models = (
        hf()
        + model("main", f'"{FAKE}/a"', 'retries = 0\nfallbacks = ["spare"]')
        + model("spare", f'"{FAKE}/b"')
    )
    async with app_client(fake, make_config(models)) as client:
        r = await client.post("/v1/chat/completions", json={"model": "main", "messages": USER})
    assert r.status_code == 200
    assert r.json()["model"] == "spare"
    assert len(fake.requests("/b/generate")) == 1


# --- timeouts -----------------------------------------------------------------------------------


async def test_non_stream_timeout_is_504(fake: FakeHF) -> None:
    fake.script("/generate", Reply(hang=5))
    async with app_client(
        fake, make_config(hf() + model("e", f'"{FAKE}"', "timeout = 0.2"))
    ) as client:
        r = await client.post("/v1/chat/completions", json={"model": "e", "messages": USER})
    assert r.status_code == 504  # not the hung upstream's answer, 5 s later
    assert r.json()["error"]["code"] == "upstream_timeout"


async def test_first_token_timeout_is_504(fake: FakeHF) -> None:
    fake.script("/generate_stream", Reply(chunks=sse(*tgi_stream_events()), delay=3))
    extra = "first_token_timeout = 0.2"
    async with app_client(fake, make_config(hf() + model("e", f'"{FAKE}"', extra))) as client:
        r = await client.post(
            "/v1/chat/completions", json={"model": "e", "messages": USER, "stream": True}
        )
    assert r.status_code == 504


async def test_idle_timeout_ends_stream_with_error_event_but_long_streams_live() -> None:
    # Real sockets: the idle timeout is the transport's read timeout.
    fake = FakeHF()
    events = tgi_stream_events(["a"] * 12)
    # Healthy: 12 tokens 50 ms apart take longer than `timeout` (a non-stream limit).
    fake.script("/generate_stream", Reply(chunks=sse(*events), delay=0.05))
    # Stalled: 500 ms between chunks, more than `idle_timeout`.
    fake.script("/generate_stream", Reply(chunks=sse(*events), delay=0.5))
    extra = "idle_timeout = 0.3\ntimeout = 0.2\nfirst_token_timeout = 2"
    body = {"model": "e", "messages": USER, "stream": True}
    async with serve_asgi(fake.asgi) as upstream:
        app = create_app(make_config(hf(upstream) + model("e", f'"{upstream}"', extra)))
        async with serve_asgi(app) as shim, httpx.AsyncClient(base_url=shim, timeout=10) as client:
            healthy = await client.post("/v1/chat/completions", json=body)
            stalled = await client.post("/v1/chat/completions", json=body)
    assert healthy.text.count('"content":"a"') == 12 and '"error"' not in healthy.text
    assert stalled.status_code == 200  # the first token came in time
    assert stalled.text.count('"code":"upstream_timeout"') == 1
    assert stalled.text.endswith("data: [DONE]\n\n")


# --- real sockets: disconnects and dropped connections ---------------------------------------------


async def test_client_disconnect_mid_stream_closes_upstream() -> None:
    fake = FakeHF()
    fake.script("/generate_stream", Reply(chunks=sse(*tgi_stream_events(["x"] * 200)), delay=0.02))
    async with serve_asgi(fake.asgi) as upstream:
        config = make_config(hf(upstream) + model("e", f'"{upstream}"'))
        async with serve_asgi(create_app(config, registry=CollectorRegistry())) as shim:
            async with (
                httpx.AsyncClient(timeout=5) as client,
                client.stream(
                    "POST",
                    f"{shim}/v1/chat/completions",
                    json={"model": "e", "messages": USER, "stream": True},
                ) as response,
            ):
                async for _ in response.aiter_bytes():
                    break
            for _ in range(100):
                if fake.closed_early:
                    break
                await asyncio.sleep(0.02)
    assert fake.closed_early == 1


async def test_client_disconnect_before_answer_cancels_upstream_call() -> None:
    fake = FakeHF()
    fake.script("/generate", Reply(hang=10))
    async with serve_asgi(fake.asgi) as upstream:
        config = make_config(hf(upstream) + model("e", f'"{upstream}"'))
        async with serve_asgi(create_app(config, registry=CollectorRegistry())) as shim:
            async with httpx.AsyncClient(timeout=0.3) as client:
                with pytest.raises(httpx.ReadTimeout):
                    await client.post(
                        f"{shim}/v1/chat/completions", json={"model": "e", "messages": USER}
                    )
            for _ in range(100):
                if fake.disconnected:
                    break
                await asyncio.sleep(0.02)
    assert fake.disconnected == 1


async def test_upstream_drop_mid_stream_is_one_error_event() -> None:
    fake = FakeHF()
    fake.script(
        "/generate_stream", Reply(chunks=sse(*tgi_stream_events(["a", "b", "c"])[:2]), drop=True)
    )
    async with serve_asgi(fake.asgi, log_level="critical") as upstream:
        config = make_config(hf(upstream) + model("e", f'"{upstream}"'))
        app = create_app(config, registry=CollectorRegistry())
        async with serve_asgi(app) as shim, httpx.AsyncClient(timeout=5) as client:
            r = await client.post(
                f"{shim}/v1/chat/completions",
                json={"model": "e", "messages": USER, "stream": True},
            )
    assert r.status_code == 200
    payloads = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    errors = [p for p in payloads if p != "[DONE]" and "error" in json.loads(p)]
    assert len(errors) == 1
    assert payloads[-1] == "[DONE]"


async def test_connection_refused_real_socket() -> None:
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    config = make_config(hf(dead) + model("e", f'"{dead}"', "retries = 1"))
    app = create_app(config, registry=CollectorRegistry())
    async with serve_asgi(app) as shim, httpx.AsyncClient(timeout=5) as client:
        r = await client.post(f"{shim}/v1/chat/completions", json={"model": "e", "messages": USER})
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_unreachable"


_TGI_ANSWER = (
    b'{"generated_text":"hi","details":{"finish_reason":"eos_token","generated_tokens":1}}'
)


@pytest.mark.parametrize(
    ("retries", "status"), [(1, 200), (0, 502)], ids=["retried", "without-retries"]
)
async def test_keepalive_connection_the_upstream_closed_is_retried(
    retries: int, status: int
) -> None:
    # The upstream answers the first request on a connection and hangs up on the next one
    # before answering a byte (a keep-alive connection it had closed): nothing was answered, so
    # shim retries on a fresh connection.
    connections: list[int] = []

    async def tgi(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(_TGI_ANSWER)}\r\n\r\n".encode()
            + _TGI_ANSWER
        )
        await writer.drain()
        await read_request(reader)  # the next request on this connection: hang up

    async with raw_server(tgi) as upstream:
        config = make_config(hf(upstream) + model("e", f'"{upstream}"', f"retries = {retries}"))
        app = create_app(config, registry=CollectorRegistry())
        async with serve_asgi(app) as shim, httpx.AsyncClient(base_url=shim, timeout=5) as client:
            body = {"model": "e", "messages": USER}
            first = await client.post("/v1/chat/completions", json=body)
            second = await client.post("/v1/chat/completions", json=body)
    assert first.status_code == 200
    assert second.status_code == status, second.text
    if status == 200:
        assert second.json()["choices"][0]["message"]["content"] == "hi"
        assert len(connections) == 2
    else:
        assert "closed the connection before answering" in second.json()["error"]["message"]


# --- clients and abuse ----------------------------------------------------------------------------

KEYS = """
api_keys = ["plain-key-1"]
[[server.keys]]
key = "team-a-key"
name = "team-a"
models = ["e"]
rpm = 2
"""


async def test_api_keys(fake: FakeHF) -> None:
    models = hf() + model("e", f'"{FAKE}/a"') + model("f", f'"{FAKE}/b"')
    clock = FakeClock()
    async with app_client(fake, make_config(models, server=KEYS), clock=clock) as client:
        body = {"model": "e", "messages": USER}
        r = await client.post("/v1/chat/completions", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        r = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer nope"}
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer plain-key-1"}
        )
        assert r.status_code == 200
        team = {"authorization": "Bearer team-a-key"}
        r = await client.post("/v1/chat/completions", json={**body, "model": "f"}, headers=team)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        r = await client.get("/v1/models", headers=team)
        assert [m["id"] for m in r.json()["data"]] == ["e"]
        r = await client.get("/v1/models/f", headers=team)
        assert r.status_code == 404
        r = await client.post("/v1/chat/completions", json=body, headers=team)
        assert r.status_code == 200  # the 2nd request of the minute (the 404 counted too)
        r = await client.post("/v1/chat/completions", json=body, headers=team)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        clock.advance(60)  # the window moved on
        r = await client.post("/v1/chat/completions", json=body, headers=team)
        assert r.status_code == 200
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_metrics_auth(fake: FakeHF) -> None:
    server = 'metrics_auth = true\napi_keys = ["k1"]\n'
    async with app_client(
        fake, make_config(hf() + model("e", f'"{FAKE}"'), server=server)
    ) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (
            await client.get("/metrics", headers={"authorization": "Bearer k1"})
        ).status_code == 200


async def test_keys_configured_but_empty_fail_closed(fake: FakeHF) -> None:
    async with app_client(
        fake, make_config(hf() + model("e", f'"{FAKE}"'), server='api_keys = [""]')
    ) as client:
        r = await client.get("/v1/models", headers={"authorization": "Bearer "})
        assert r.status_code == 401


async def test_max_concurrency_queue_full_is_429(fake: FakeHF) -> None:
    for _ in range(4):
        fake.script("/generate", Reply(hang=0.3, json={"generated_text": "x"}))
    models = hf() + model("e", f'"{FAKE}"', "max_concurrency = 1\nmax_queue = 1")
    body = {"model": "e", "messages": USER}
    async with (
        shim_server(fake, make_config(models)) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        results = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=body) for _ in range(4))
        )
    statuses = sorted(r.status_code for r in results)
    # One runs, one waits in the queue, the rest are turned away at once.
    assert statuses == [200, 200, 429, 429]
    assert (
        results[[r.status_code for r in results].index(429)].json()["error"]["code"]
        == "rate_limit_exceeded"
    )


async def test_limits_on_messages_n_and_max_tokens(fake: FakeHF) -> None:
    extra = "max_messages = 2\nmax_n = 2\nmax_tokens_limit = 100"
    async with app_client(fake, make_config(hf() + model("e", f'"{FAKE}"', extra))) as client:
        r = await client.post("/v1/chat/completions", json={"model": "e", "messages": USER * 3})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
        r = await client.post("/v1/chat/completions", json={"model": "e", "messages": USER, "n": 3})
        assert r.status_code == 400 and r.json()["error"]["param"] == "n"
        r = await client.post(
            "/v1/chat/completions", json={"model": "e", "messages": USER, "max_tokens": 101}
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"


async def test_cors(fake: FakeHF) -> None:
    server = 'cors_origins = ["http://ui.example"]'
    async with app_client(
        fake, make_config(hf() + model("e", f'"{FAKE}"'), server=server)
    ) as client:
        r = await client.options(
            "/v1/chat/completions",
            headers={"origin": "http://ui.example", "access-control-request-method": "POST"},
        )
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "http://ui.example"
        assert "authorization" in r.headers["access-control-allow-headers"]
        r = await client.post(
            "/v1/chat/completions",
            json={"model": "e", "messages": USER},
            headers={"origin": "http://ui.example"},
        )
        assert r.headers["access-control-allow-origin"] == "http://ui.example"
        r = await client.get("/v1/models", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


# --- operations -------------------------------------------------------------------------------------


async def test_reload_swaps_routes_atomically_and_rejects_bad_config(
    fake: FakeHF, tmp_path: Any
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(hf() + model("old", f'"{FAKE}"'))
    app = create_app(load_config(path), transport=fake.transport(), registry=CollectorRegistry())
    from litestar.testing import AsyncTestClient

    services = app.state.shim
    async with AsyncTestClient(app=app) as client:
        fake.script("/generate", Reply(hang=0.3, json={"generated_text": "slow"}))
        inflight = asyncio.create_task(
            client.post("/v1/chat/completions", json={"model": "old", "messages": USER})
        )
        await asyncio.sleep(0.05)
        path.write_text(hf() + model("new", f'"{FAKE}"'))
        assert reload_config(services)
        assert (await inflight).status_code == 200  # the in-flight request kept its route
        assert [m["id"] for m in (await client.get("/v1/models")).json()["data"]] == ["new"]
        path.write_text("[models.broken]\ntask = 1\n")
        assert not reload_config(services)
        assert (
            await client.post("/v1/chat/completions", json={"model": "new", "messages": USER})
        ).status_code == 200


async def test_ready_turns_503_while_draining(fake: FakeHF) -> None:
    app = create_app(
        make_config(hf() + model("e", f'"{FAKE}"')),
        transport=fake.transport(),
        registry=CollectorRegistry(),
    )
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/ready")).status_code == 200
        app.state.shim.draining = True
        r = await client.get("/ready")
        assert r.status_code == 503 and r.json()["status"] == "draining"
        assert (await client.get("/health")).status_code == 200


async def test_ready_probes_upstreams_and_never_shows_tokens(fake: FakeHF) -> None:
    fake.script("/b/health", Reply(503, body=b""))
    models = hf() + model("e", f'"{FAKE}/a"') + model("f", f'"{FAKE}/b"')
    async with app_client(fake, make_config(models)) as client:
        r = await client.get("/ready?upstreams=1")
    body = r.json()
    assert body["models"]["e"]["status"] == "ok"
    assert body["models"]["f"]["status"] == "unavailable"
    assert "hf_resilience" not in r.text


async def test_fallback_across_protocols(fake: FakeHF) -> None:
    fake.script("/a/v1/chat/completions", Reply(503, body=b"down"))
    models = (
        hf()
        + '[models.main]\ntask = "text-generation"\nprotocol = "openai"\n'
        + f'url = "{FAKE}/a"\nretries = 0\nwait_for_model = 0\nfallbacks = ["spare"]\n'
        + model("spare", f'"{FAKE}/b"')
    )
    async with app_client(fake, make_config(models)) as client:
        r = await client.post(
            "/v1/chat/completions", json={"model": "main", "messages": USER, "stream": True}
        )
    assert r.status_code == 200
    assert '"model":"spare"' in r.text and r.text.endswith("data: [DONE]\n\n")
    assert len(fake.requests("/b/generate_stream")) == 1


async def test_an_endless_error_body_is_read_only_up_to_its_limit() -> None:
    # An upstream answers 500 and then sends its body without end: shim reads the first
    # ERROR_BODY_LIMIT bytes, answers at once and closes that connection.
    sent = 0

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n")
        chunk = b'{"error": "' + b"x" * 16_000
        while sent < 50_000_000:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
            await writer.drain()

    async with raw_server(endless) as upstream:
        config = make_config(hf(upstream) + model("e", f'"{upstream}"', "retries = 0"))
        app = create_app(config, registry=CollectorRegistry())
        async with serve_asgi(app) as shim, httpx.AsyncClient(base_url=shim, timeout=10) as client:
            reply = await client.post("/v1/chat/completions", json={"model": "e", "messages": USER})
    assert reply.status_code == 502, reply.text
    assert reply.json()["error"]["code"] == "upstream_error"
    assert sent < 5_000_000  # the upstream was stopped long before its 50 MB
