"""Metrics move by exactly what the traffic did; /metrics parses; logs never carry secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FAKE, MODELS, app_client, make_config, shim_server
from tests.fake_hf import FakeHF, Reply

USER = [{"role": "user", "content": "Hi"}]
EMB = MODELS + f'\n[models.emb]\ntask = "feature-extraction"\nurl = "{FAKE}/tei"\n'


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_series_move_by_the_traffic(fake: FakeHF) -> None:
    registry = CollectorRegistry()
    async with app_client(fake, make_config(EMB), registry) as client:
        await client.post("/v1/chat/completions", json={"model": "tgi", "messages": USER})
        await client.post(
            "/v1/chat/completions", json={"model": "tgi", "messages": USER, "stream": True}
        )
        await client.post("/v1/embeddings", json={"model": "emb", "input": ["a", "b"]})
        await client.post("/v1/chat/completions", json={"model": "ghost", "messages": USER})
        fake.script("/tgi/generate", Reply(500, body=b"down"))
        await client.post("/v1/chat/completions", json={"model": "tgi", "messages": USER})
        await client.get("/v1/models")

    requests = "shim_requests_total"
    assert value(registry, requests, model="tgi", endpoint="chat", status="200") == 2
    assert value(registry, requests, model="tgi", endpoint="chat", status="502") == 1
    assert value(registry, requests, model="emb", endpoint="embeddings", status="200") == 1
    assert value(registry, requests, model="unknown", endpoint="chat", status="404") == 1
    assert value(registry, requests, model="unknown", endpoint="models", status="200") == 1
    # Tokens as the upstream reported them: /generate headers (7 prompt, 4 generated) and the
    # stream's final details (input_length 7, generated_tokens 5).
    assert value(registry, "shim_tokens_total", model="tgi", kind="prompt") == 14
    assert value(registry, "shim_tokens_total", model="tgi", kind="completion") == 4 + 5
    assert value(registry, "shim_upstream_errors_total", model="tgi", reason="http_5xx") == 1
    assert value(registry, "shim_request_duration_seconds_count", model="tgi", endpoint="chat") == 3
    assert value(registry, "shim_overhead_seconds_count", model="tgi", endpoint="chat") == 3
    assert value(registry, "shim_upstream_request_duration_seconds_count", model="tgi") == 3
    assert value(registry, "shim_time_to_first_token_seconds_count", model="tgi") == 1
    # One observation per stream: the mean time between its tokens.
    assert value(registry, "shim_time_per_output_token_seconds_count", model="tgi") == 1
    assert value(registry, "shim_in_flight_requests", model="tgi") == 0
    assert value(registry, "shim_in_flight_requests", model="emb") == 0
    overhead = value(registry, "shim_overhead_seconds_sum", model="tgi", endpoint="chat")
    total = value(registry, "shim_request_duration_seconds_sum", model="tgi", endpoint="chat")
    assert 0 < overhead < total


async def test_metrics_endpoint_parses(fake: FakeHF) -> None:
    async with app_client(fake) as client:
        await client.post("/v1/chat/completions", json={"model": "tgi", "messages": USER})
        r = await client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(r.text)}
    expected = {
        "shim_requests", "shim_request_duration_seconds", "shim_time_to_first_token_seconds",
        "shim_time_per_output_token_seconds", "shim_tokens", "shim_upstream_request_duration_seconds",
        "shim_upstream_errors", "shim_in_flight_requests", "shim_overhead_seconds",
        "process_cpu_seconds", "python_info",
    }  # fmt: skip
    assert expected <= names
    assert 'le="0.0001"' in r.text  # sub-millisecond overhead buckets


async def test_label_cardinality_is_bounded(fake: FakeHF) -> None:
    registry = CollectorRegistry()
    async with app_client(fake, registry=registry) as client:
        for i in range(20):
            await client.post(
                "/v1/chat/completions", json={"model": f"random-{i}", "messages": USER}
            )
    models = {
        s.labels["model"]
        for family in registry.collect()
        if family.name == "shim_requests"
        for s in family.samples
    }
    assert models == {"unknown"}


async def test_logs_never_carry_tokens_keys_or_prompts(
    fake: FakeHF, caplog: pytest.LogCaptureFixture, access_log: io.StringIO
) -> None:
    server = 'api_keys = ["client-key-secret-42"]\nlog_format = "json"'
    caplog.set_level(logging.DEBUG)
    headers = {"authorization": "Bearer client-key-secret-42"}
    async with app_client(fake, make_config(server=server)) as client:
        await client.post(
            "/v1/chat/completions",
            json={"model": "tgi", "messages": [{"role": "user", "content": "my private prompt"}]},
            headers=headers,
        )
        fake.script(
            "/tgi/generate", Reply(401, json={"error": "bad token hf_sekrit_default_token"})
        )
        await client.post(
            "/v1/chat/completions", json={"model": "tgi", "messages": USER}, headers=headers
        )
        await client.post(
            "/v1/chat/completions",
            json={"model": "tgi", "messages": USER},
            headers={"authorization": "Bearer wrong-key-99"},
        )
        fake.script(
            "/tgi/generate",
            Reply(500, json={"error": "boom Authorization: Bearer hf_sekrit_default_token"}),
        )
        r = await client.post(
            "/v1/chat/completions", json={"model": "tgi", "messages": USER}, headers=headers
        )
    lines = access_log.getvalue().splitlines()
    text = caplog.text + "\n".join(str(r.args) for r in caplog.records) + r.text + "\n".join(lines)
    for secret in (
        "hf_sekrit_default_token",
        "client-key-secret-42",
        "wrong-key-99",
        "my private prompt",
    ):
        assert secret not in text
    assert len(lines) == 4
    fields: dict[str, Any] = json.loads(lines[0])
    assert fields["logger"] == "shim.access" and fields["status"] == 200
    assert {
        "request_id",
        "model",
        "endpoint",
        "status",
        "duration_ms",
        "upstream_ms",
        "prompt_tokens",
        "stream",
        "key",
    } <= set(fields)
    assert fields["key"] == "key-0"


async def test_log_bodies_opt_in(fake: FakeHF, access_log: io.StringIO) -> None:
    async with app_client(fake, make_config(server="log_bodies = true")) as client:
        await client.post(
            "/v1/chat/completions",
            json={"model": "tgi", "messages": [{"role": "user", "content": "visible prompt"}]},
        )
    assert "visible prompt" in access_log.getvalue()


async def test_access_line_text_format(fake: FakeHF, access_log: io.StringIO) -> None:
    async with app_client(fake) as client:
        await client.post(
            "/v1/chat/completions",
            json={"model": "tgi", "messages": USER},
            headers={"x-request-id": "rid-7"},
        )
    (line,) = access_log.getvalue().splitlines()
    assert " INFO shim.access: request_id=rid-7 method=POST path=/v1/chat/completions " in line
    assert " model=tgi status=200 " in line and " prompt_tokens=7 completion_tokens=4 " in line


async def test_access_log_off_below_info(fake: FakeHF, access_log: io.StringIO) -> None:
    async with app_client(fake, make_config(server='log_level = "warning"')) as client:
        await client.post("/v1/chat/completions", json={"model": "tgi", "messages": USER})
    assert access_log.getvalue() == ""


def test_json_formatter_emits_one_json_object() -> None:
    from shim.accesslog import JSONFormatter

    record = logging.LogRecord("shim.access", logging.INFO, __file__, 1, "request", None, None)
    record.fields = {"status": 200}
    line = JSONFormatter().format(record)
    assert json.loads(line)["status"] == 200


async def test_promtool_accepts_metrics(fake: FakeHF) -> None:
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`; .ci/run installs it)")
    async with app_client(fake) as client:
        await client.post("/v1/chat/completions", json={"model": "tgi", "messages": USER})
        text = (await client.get("/metrics")).text
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # promtool lints naming too; only errors (not lint warnings about e.g. counters) fail.
    assert result.returncode in (0, 3) or "error" not in result.stderr.lower(), result.stderr


async def test_metrics_can_be_disabled(fake: FakeHF) -> None:
    registry = CollectorRegistry()
    async with app_client(fake, make_config(server="metrics = false"), registry) as client:
        await client.post("/v1/chat/completions", json={"model": "tgi", "messages": USER})
        assert (await client.get("/metrics")).status_code == 404
    assert value(registry, "shim_requests_total", model="tgi", endpoint="chat", status="200") == 0


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    """What the access log writes (flushed when the app shuts down)."""
    from shim.accesslog import ACCESS

    sink, previous = io.StringIO(), ACCESS.stream
    ACCESS.stream = sink
    try:
        yield sink
    finally:
        ACCESS.flush()
        ACCESS.stream = previous


async def test_concurrent_upstream_calls_count_once_in_the_overhead(fake: FakeHF) -> None:
    models = (
        MODELS
        + f'\n[models.emb]\ntask = "feature-extraction"\nurl = "{FAKE}/tei"\nmax_batch_size = 2\n'
    )
    for _ in range(4):
        fake.script("/tei/embed", lambda seen: Reply(hang=0.1, json=[[1.0, 0.0]] * 2))
    registry = CollectorRegistry()
    async with shim_server(fake, make_config(models), registry) as base:
        import httpx

        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.post(
                "/v1/embeddings", json={"model": "emb", "input": list("abcdefgh")}
            )
    assert r.status_code == 200
    total = value(registry, "shim_request_duration_seconds_sum", model="emb", endpoint="embeddings")
    upstream = value(registry, "shim_upstream_request_duration_seconds_sum", model="emb")
    # Four 100 ms calls ran side by side: ~0.1 s waiting, not 0.4 s.
    assert 0.09 < upstream < 0.3
    assert upstream <= total
    assert value(registry, "shim_overhead_seconds_sum", model="emb", endpoint="embeddings") > 0
