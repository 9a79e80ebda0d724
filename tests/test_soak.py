"""Soak: 2,000 mixed requests against a faulty upstream, with random client disconnects.

Every request must end in a success or a well-formed OpenAI error (never a hang), and afterwards
nothing may be left behind: in-flight gauges at 0, no upstream stream open, memory flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import resource
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from shim.app import create_app
from tests.conftest import make_config, serve_asgi
from tests.fake_hf import FakeHF, Reply, Seen, sse, tgi_stream_events

TOTAL = 2000
WARMUP = 400
CONCURRENCY = 32
FAULT_RATE = 0.10
DISCONNECT_RATE = 0.05
DEADLINE = 150.0


class FaultyHF(FakeHF):
    """Answers like FakeHF, except for ~10% of requests: 500s, garbage, loading, hangs, drops."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.random = random.Random(seed)
        self.faults: Counter[str] = Counter()

    def reply(self, seen: Seen) -> Reply:
        if seen.method != "POST" or self.random.random() >= FAULT_RATE:
            return super().reply(seen)
        kind = self.random.choice(["500", "garbage", "loading", "hang", "drop", "429"])
        self.faults[kind] += 1
        if kind == "500":
            return Reply(500, json={"error": "injected"})
        if kind == "429":
            return Reply(429, json={"error": "Model is overloaded", "error_type": "overloaded"})
        if kind == "garbage":
            return Reply(200, body=b"\x00not json at all")
        if kind == "loading":
            return Reply(
                503, json={"error": "Model m is currently loading", "estimated_time": 0.05}
            )
        if kind == "hang":
            return Reply(hang=2.0, json={"generated_text": "late"})
        if seen.path.endswith("/generate_stream"):
            return Reply(chunks=sse(*tgi_stream_events(["a", "b", "c"])[:2]), drop=True)
        return Reply(500, json={"error": "injected drop"})


def _config(upstream: str) -> Any:
    models = f"""
[huggingface]
token = "hf_soak_token_123456"
base_url = "{upstream}"
[models.tgi]
task = "text-generation"
url = "{upstream}/tgi"
chat_template = "chatml"
retries = 1
wait_for_model = 0.5
timeout = 0.5
first_token_timeout = 0.5
idle_timeout = 0.5
[models.vllm]
task = "text-generation"
url = "{upstream}/vllm"
protocol = "openai"
retries = 1
timeout = 0.5
first_token_timeout = 0.5
[models.emb]
task = "feature-extraction"
url = "{upstream}/tei"
max_batch_size = 4
retries = 1
timeout = 0.5
"""
    return make_config(models)


def _well_formed_error(status: int, text: str) -> bool:
    try:
        error = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return 400 <= status < 600 and set(error) == {"message", "type", "param", "code"}


def _stream_ok(text: str) -> bool:
    # A stream ends with [DONE], after answer chunks or exactly one error event.
    if not text.endswith("data: [DONE]\n\n"):
        return False
    payloads = [line[6:] for line in text.split("\n") if line.startswith("data: ")][:-1]
    errors = sum(1 for p in payloads if "error" in json.loads(p))
    return errors <= 1


async def _one(client: httpx.AsyncClient, rng: random.Random, outcomes: Counter[str]) -> None:
    kind = rng.choices(
        ["chat", "stream", "vllm-stream", "completions", "embeddings"], [35, 25, 10, 10, 20]
    )[0]
    disconnect = rng.random() < DISCONNECT_RATE
    user = [{"role": "user", "content": "hi " * rng.randint(1, 20)}]
    if kind == "embeddings":
        path, body = (
            "/v1/embeddings",
            {"model": "emb", "input": [f"t{i}" for i in range(rng.randint(1, 10))]},
        )
    elif kind == "completions":
        path, body = "/v1/completions", {"model": "tgi", "prompt": "Once", "max_tokens": 5}
    else:
        model = "vllm" if kind == "vllm-stream" else "tgi"
        path, body = (
            "/v1/chat/completions",
            {"model": model, "messages": user, "stream": kind != "chat"},
        )
    try:
        if body.get("stream"):
            async with client.stream("POST", path, json=body) as response:
                if disconnect:
                    async for _ in response.aiter_bytes():
                        break
                    outcomes["disconnected"] += 1
                    return
                text = (await response.aread()).decode()
            ok = (
                _stream_ok(text)
                if response.status_code == 200
                else _well_formed_error(response.status_code, text)
            )
        else:
            timeout = 0.002 if disconnect else 10.0
            response = await client.post(path, json=body, timeout=timeout)
            ok = response.status_code == 200 and "error" not in response.json()
            ok = ok or _well_formed_error(response.status_code, response.text)
        outcomes[f"{response.status_code}" if ok else f"MALFORMED {response.status_code}"] += 1
    except httpx.TimeoutException:
        outcomes["disconnected" if disconnect else "CLIENT TIMEOUT"] += 1


async def _drive(base: str, count: int, rng: random.Random, outcomes: Counter[str]) -> None:
    queue = iter(range(count))
    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=base, timeout=10.0, limits=limits) as client:

        async def worker() -> None:
            for _ in queue:
                await _one(client, rng, outcomes)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_soak_mixed_traffic_with_faults_and_disconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="shim")  # 2,000 access lines are not the point
    fake = FaultyHF(seed=7)
    rng = random.Random(11)
    outcomes: Counter[str] = Counter()
    registry = CollectorRegistry()
    # (The fake drops connections on purpose: uvicorn would log each one.)
    async with serve_asgi(fake.asgi, log_level="critical") as upstream:
        app = create_app(_config(upstream), registry=registry)
        services = app.state.shim
        async with serve_asgi(app) as base:
            started = time.monotonic()
            await asyncio.wait_for(_drive(base, WARMUP, rng, outcomes), DEADLINE)
            rss_before = _rss_mb()
            await asyncio.wait_for(_drive(base, TOTAL - WARMUP, rng, outcomes), DEADLINE)
            elapsed = time.monotonic() - started
            # Let cancelled upstream calls finish closing.
            for _ in range(100):
                if fake.open_streams == 0 and _in_flight(registry) == 0:
                    break
                await asyncio.sleep(0.05)
            rss_after = _rss_mb()
            in_flight_upstreams = [
                s.in_flight for pool in services.active.pools.values() for s in pool.states
            ]
    report = (
        f"{TOTAL} requests in {elapsed:.1f}s; outcomes {dict(outcomes)}; "
        f"faults injected {dict(fake.faults)} ({sum(fake.faults.values())}); "
        f"RSS {rss_before:.1f} -> {rss_after:.1f} MB"
    )
    print(report)
    assert sum(outcomes.values()) == TOTAL, report
    assert not [k for k in outcomes if k.startswith(("MALFORMED", "CLIENT"))], report
    assert outcomes["200"] > TOTAL * 0.7, report
    assert sum(fake.faults.values()) > TOTAL * 0.05, report
    assert _in_flight(registry) == 0, report
    assert in_flight_upstreams == [0] * len(in_flight_upstreams), report
    assert fake.open_streams == 0, report
    assert rss_after - rss_before < 40, report


def _in_flight(registry: CollectorRegistry) -> float:
    total = 0.0
    for family in registry.collect():
        if family.name == "shim_in_flight_requests":
            total += sum(sample.value for sample in family.samples)
    return total


with contextlib.suppress(Exception):
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
