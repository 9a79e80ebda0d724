"""Two ``shim serve`` processes sharing one real ``redis-server`` (``[state] backend =
"redis"``): a response made on one is read, continued and deleted through the other, and a key's
``rpm`` holds across both."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.conftest import free_port, serve_asgi
from tests.fake_hf import FakeHF, Reply
from tests.redis_server import redis_server

CONFIG = """
[server]
api_keys = ["sk-open"]
[[server.keys]]
key = "sk-limited"
name = "limited"
rpm = 3

[state]
backend = "redis"
url = "{redis}"
key_prefix = "test:"

[models.m]
task = "text-generation"
url = "{upstream}"
chat_template = "chatml"
retries = 0
"""
OPEN = {"authorization": "Bearer sk-open"}
LIMITED = {"authorization": "Bearer sk-limited"}


@contextlib.asynccontextmanager
async def _shim(config: Path) -> AsyncIterator[str]:
    """``shim serve`` in a subprocess until the block ends; its base URL once ``/ready``."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shim", "serve", "--config", str(config), "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/ready")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("shim did not become ready")
        yield base
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def test_two_processes_share_responses_and_rate_windows(tmp_path: Path) -> None:
    fake = FakeHF()
    fake.script("/generate", *(Reply(json={"generated_text": t}) for t in ("One.", "Two.")))
    with redis_server() as redis:
        async with serve_asgi(fake.asgi) as upstream:
            config = tmp_path / "shim.toml"
            config.write_text(CONFIG.format(redis=redis, upstream=upstream))
            async with (
                _shim(config) as first_url,
                _shim(config) as second_url,
                httpx.AsyncClient(base_url=first_url, headers=OPEN, timeout=10) as first,
                httpx.AsyncClient(base_url=second_url, headers=OPEN, timeout=10) as second,
            ):
                made = await first.post("/v1/responses", json={"model": "m", "input": "Say one."})
                rid = made.json()["id"]
                read = await second.get(f"/v1/responses/{rid}")
                continued = await second.post(
                    "/v1/responses",
                    json={"model": "m", "input": "Say two.", "previous_response_id": rid},
                )
                items = await first.get(
                    f"/v1/responses/{continued.json()['id']}/input_items", params={"order": "asc"}
                )
                deleted = await second.delete(f"/v1/responses/{rid}")
                gone = await first.get(f"/v1/responses/{rid}")

                chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                statuses = []
                for client in (first, second, first, second):
                    reply = await client.post("/v1/chat/completions", json=chat, headers=LIMITED)
                    statuses.append(reply.status_code)
    assert made.status_code == 200, made.text
    assert read.json() == made.json()
    assert continued.json()["output"][0]["content"][0]["text"] == "Two."
    prompt = fake.requests("/generate")[1].json()["inputs"]
    assert prompt.index("Say one.") < prompt.index("One.") < prompt.index("Say two.")
    texts = [item["content"][0]["text"] for item in items.json()["data"]]
    assert texts == ["Say one.", "One.", "Say two."]
    assert deleted.status_code == 200
    assert gone.status_code == 404
    # rpm = 3 across both processes: the fourth request is refused, whichever serves it.
    assert statuses == [200, 200, 200, 429]
