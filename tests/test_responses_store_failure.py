"""A store that fails when a stream's response is saved (just before its last event): the
stream ends cleanly with ``response.failed`` instead of ``response.completed``, on every
protocol. The stores really fail: a ``redis-server`` the test stops, a SQLite directory that
has become a file. shim runs on a real loopback socket, so a dropped connection would show.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MODELS, make_config, shim_server
from tests.fake_hf import TOKENS, FakeHF
from tests.redis_server import redis_server
from tests.test_responses_api import MODELS as PROTOCOLS
from tests.test_responses_api import collapsed, events_of

ANSWER = "".join(TOKENS)
REDIS = '\n[state]\nbackend = "redis"\nurl = "{url}"\nkey_prefix = "gone:"\n'
SQLITE = '\n[state]\nbackend = "sqlite"\npath = "{path}"\n'


def _failed_as_openai_says(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The stream's end: every item done, then ``response.failed``; its response."""
    assert collapsed(events)[-2:] == ["response.output_item.done", "response.failed"]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    response: dict[str, Any] = events[-1][1]["response"]
    assert response["status"] == "failed"
    assert response["error"]["code"] == "server_error"  # openai-python's codes only
    assert "state_unavailable" in response["error"]["message"]
    # The answer itself was whole: only storing it failed.
    [message] = response["output"]
    assert (message["status"], message["content"][0]["text"]) == ("completed", ANSWER)
    assert response["usage"]["total_tokens"] > 0
    return response


async def _stream(client: httpx.AsyncClient, model: str) -> httpx.Response:
    # Read to the end: a connection dropped before the body's end raises here.
    reply = await client.post(
        "/v1/responses", json={"model": model, "input": "Say hi.", "stream": True}
    )
    assert reply.status_code == 200, reply.text
    return reply


@pytest.mark.parametrize("model", PROTOCOLS.values(), ids=PROTOCOLS.keys())
async def test_redis_stopped_mid_run(fake: FakeHF, model: str) -> None:
    with contextlib.ExitStack() as redis:
        url = redis.enter_context(redis_server())
        config = make_config(MODELS + REDIS.format(url=url))
        async with (
            shim_server(fake, config) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as client,
        ):
            stored = events_of((await _stream(client, model)).text)[-1]
            redis.close()  # the server is gone from here on
            reply = await _stream(client, model)
            after = await client.get(
                f"/v1/responses/{events_of(reply.text)[-1][1]['response']['id']}"
            )
            whole = await client.post("/v1/responses", json={"model": model, "input": "Say hi."})
    assert stored[0] == "response.completed"
    _failed_as_openai_says(events_of(reply.text))
    assert after.status_code == whole.status_code == 503
    assert after.json()["error"]["code"] == whole.json()["error"]["code"] == "state_unavailable"


async def test_sqlite_directory_replaced_by_a_file(fake: FakeHF, tmp_path: Path) -> None:
    # Opened on first use, at the stream's save: by then its directory is a file.
    directory = tmp_path / "state"
    config = make_config(MODELS + SQLITE.format(path=directory / "state.db"))
    async with (
        shim_server(fake, config) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        directory.write_text("not a directory")
        reply = await _stream(client, "tgi")
    response = _failed_as_openai_says(events_of(reply.text))
    assert "SQLite" in response["error"]["message"]


async def test_openai_python_reads_the_failed_stream(fake: FakeHF, tmp_path: Path) -> None:
    directory = tmp_path / "state"
    config = make_config(MODELS + SQLITE.format(path=directory / "state.db"))
    async with shim_server(fake, config) as base:
        directory.write_text("not a directory")
        sdk = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
        stream = await sdk.responses.create(model="vllm", input="Say hi.", stream=True)
        events = [event async for event in stream]
        await sdk.close()
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.error is not None
    assert failed.response.error.code == "server_error"
    assert failed.response.status == "failed"
    assert failed.response.output_text == ANSWER
