"""CORS in a real browser: a page on another origin streams a chat completion from shim with
``fetch`` and ``response.body.getReader()``, in headless Chromium driven by Playwright.

Needs Debian's ``/usr/bin/chromium`` and the ``playwright`` package (its own browser downloads
are never used); skipped with the reason otherwise. The screenshot is written to
``tests/clients/artifacts/cors.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio

from tests.clients.node_sdk import SDK_DIR, ensure_node_sdk
from tests.clients.stack import ANSWER, GOOD_KEY, Stack, bounded, running_stack
from tests.conftest import serve_asgi
from tests.fake_hf import Reply, sse, tgi_stream_events

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install playwright)"
)
pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = os.environ.get("SHIM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 15_000

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shim: streaming across origins</title>
<style>
  body { font: 16px/1.4 sans-serif; margin: 2em; }
  pre { border: 1px solid #888; padding: 1em; min-height: 1.5em; font-size: 20px; }
  code { background: #eee; padding: 0 .2em; }
</style></head>
<body data-state="idle">
<h1>Chat stream from shim, cross-origin</h1>
<p>This page: <code id="origin"></code><br>shim: <code id="target"></code></p>
<pre id="out"></pre>
<p>state: <code id="state">idle</code> &middot; body reads: <code id="reads">0</code>
&middot; x-request-id: <code id="rid"></code></p>
<script>
const params = new URLSearchParams(location.search);
const shim = params.get("shim"), key = params.get("key"), model = params.get("model");
const $ = (id) => document.getElementById(id);
$("origin").textContent = location.origin;
$("target").textContent = shim;
function setState(state) { document.body.dataset.state = state; $("state").textContent = state; }

async function run() {
  setState("streaming");
  const response = await fetch(shim + "/v1/chat/completions", {
    method: "POST",
    headers: { "Authorization": "Bearer " + key, "Content-Type": "application/json" },
    body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "Say hello." }] }),
  });
  $("rid").textContent = response.headers.get("x-request-id") || "";
  if (!response.ok) throw new Error("HTTP " + response.status + ": " + await response.text());
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", reads = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the stream ended without [DONE]");
    $("reads").textContent = ++reads;
    buffer += decoder.decode(value, { stream: true }).replace(/\\r\\n/g, "\\n");
    let end;
    while ((end = buffer.indexOf("\\n\\n")) !== -1) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        for (const choice of chunk.choices) $("out").textContent += choice.delta.content || "";
      }
    }
  }
}
run().then(() => setState("done"), (err) => setState("error: " + err));
</script>
</body></html>
"""


SDK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shim: the openai SDK in a browser</title></head>
<body data-state="idle">
<pre id="create"></pre><pre id="helper"></pre>
<script type="module">
import OpenAI from "/openai/index.mjs";
const params = new URLSearchParams(location.search);
const client = new OpenAI({
  baseURL: params.get("shim") + "/v1", apiKey: params.get("key"),
  dangerouslyAllowBrowser: true, maxRetries: 0, timeout: 10000,
});
const model = params.get("model");
const messages = [{ role: "user", content: "Say hello." }];
async function run() {
  document.body.dataset.state = "streaming";
  const stream = await client.chat.completions.create({ model, messages, stream: true });
  for await (const chunk of stream) {
    document.getElementById("create").textContent += chunk.choices[0]?.delta?.content ?? "";
  }
  // The stream helper adds its own X-Stainless-Helper-Method header: the preflight must allow it.
  const runner = client.chat.completions.stream({ model, messages });
  runner.on("content", (delta) => { document.getElementById("helper").textContent += delta; });
  await runner.finalChatCompletion();
}
run().then(
  () => { document.body.dataset.state = "done"; },
  (err) => { document.body.dataset.state = "error: " + err; },
);
</script>
</body></html>
"""
_JS_TYPES = {".mjs": b"text/javascript", ".js": b"text/javascript", ".json": b"application/json"}


def _page_response(path: str) -> tuple[int, bytes, bytes]:
    if path == "/":
        return 200, b"text/html; charset=utf-8", PAGE.encode()
    if path == "/sdk":
        return 200, b"text/html; charset=utf-8", SDK_PAGE.encode()
    if path.startswith("/openai/"):
        # The Node SDK's ES modules, as a browser app would bundle them.
        root = SDK_DIR.resolve()
        file = (root / path.removeprefix("/openai/")).resolve()
        if file.is_relative_to(root) and file.is_file() and file.suffix in _JS_TYPES:
            return 200, _JS_TYPES[file.suffix], file.read_bytes()
    return 404, b"text/plain", b"not found"


async def page_app(scope: Any, receive: Any, send: Any) -> None:
    """A static origin: the pages (and the SDK's modules), nothing else."""
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]
            await send({"type": f"{kind}.complete"})
            if kind == "lifespan.shutdown":
                return
    status, content_type, body = _page_response(scope["path"])
    headers = [(b"content-type", content_type)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Origins:
    stack: Stack
    #: The page's origin, allowed by ``cors_origins``.
    allowed: str
    #: Another origin serving the same page, not allowed.
    other: str

    def page(self, origin: str, model: str = "tgi", path: str = "/") -> str:
        query = urlencode({"shim": self.stack.url, "key": GOOD_KEY, "model": model})
        return f"{origin}{path}?{query}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def origins() -> AsyncIterator[Origins]:
    async with serve_asgi(page_app) as allowed, serve_asgi(page_app) as other:
        server = f"api_keys = {json.dumps([GOOD_KEY])}\ncors_origins = {json.dumps([allowed])}"
        async with running_stack(server) as stack:
            yield Origins(stack, allowed, other)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()


async def _run_page(
    browser: Any, url: str, ids: tuple[str, ...], screenshot: Path | None = None
) -> dict[str, str]:
    """Open the page, wait until its script is done (or failed); the text of elements ``ids``
    and the ``state``."""
    page = await browser.new_page(viewport={"width": 900, "height": 420})
    try:
        await page.goto(url, timeout=TIMEOUT_MS)
        await page.wait_for_function(
            "!['idle', 'streaming', undefined].includes(document.body.dataset.state)",
            timeout=TIMEOUT_MS,
        )
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(screenshot))
        result: dict[str, str] = await page.evaluate(
            """(ids) => Object.fromEntries([
                ["state", document.body.dataset.state],
                ...ids.map((id) => [id, document.getElementById(id).textContent]),
            ])""",
            list(ids),
        )
        return result
    finally:
        await page.close()


@bounded(40)
async def test_browser_streams_across_origins(browser: Any, origins: Origins) -> None:
    fake = origins.stack.reset().fake
    # Tokens 50 ms apart, so the page sees the body arrive in several reads.
    events = sse(*tgi_stream_events(), space=False)
    fake.script("/tgi/generate_stream", Reply(chunks=events, delay=0.05))
    page = origins.page(origins.allowed)
    got = await _run_page(browser, page, ("out", "reads", "rid"), ARTIFACTS / "cors.png")
    assert got["state"] == "done", got
    assert got["out"] == ANSWER
    assert int(got["reads"]) >= 2, got
    # An exposed header: readable by the page's script.
    assert len(got["rid"]) >= 16, got
    assert fake.requests("/tgi/generate_stream")
    assert (ARTIFACTS / "cors.png").stat().st_size > 0


@bounded(40)
async def test_browser_blocks_a_disallowed_origin(browser: Any, origins: Origins) -> None:
    fake = origins.stack.reset().fake
    got = await _run_page(browser, origins.page(origins.other), ("out",))
    # Chromium refuses the preflight's answer, so the POST is never sent.
    assert got["state"].startswith("error: TypeError"), got
    assert got["out"] == ""
    assert fake.requests() == []


@bounded(40)
async def test_openai_node_sdk_in_the_browser(browser: Any, origins: Origins) -> None:
    """The Node SDK's browser build sends its own headers (``X-Stainless-*``, and
    ``X-Stainless-Helper-Method`` from ``.stream()``): every one must pass the preflight."""
    await asyncio.to_thread(ensure_node_sdk)
    fake = origins.stack.reset().fake
    for model in ("tgi", "vllm"):
        got = await _run_page(
            browser, origins.page(origins.allowed, model, "/sdk"), ("create", "helper")
        )
        assert got == {"state": "done", "create": ANSWER, "helper": ANSWER}, (model, got)
    assert len(fake.requests("/tgi/generate_stream")) == 2


@bounded()
async def test_preflight_and_cors_headers(origins: Origins) -> None:
    origins.stack.reset()
    url = f"{origins.stack.api}/chat/completions"
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,x-stainless-helper-method",
    }
    body = {"model": "tgi", "messages": [{"role": "user", "content": "hi"}]}
    auth = {"authorization": f"Bearer {GOOD_KEY}"}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        allowed = await http.options(url, headers={"origin": origins.allowed, **preflight})
        refused = await http.options(url, headers={"origin": origins.other, **preflight})
        post = await http.post(url, json=body, headers={"origin": origins.allowed, **auth})
        post_other = await http.post(url, json=body, headers={"origin": origins.other, **auth})
        no_key = await http.post(url, json=body, headers={"origin": origins.allowed})
        odd = await http.options(
            url,
            headers={
                "origin": origins.allowed,
                "access-control-request-method": "POST",
                "access-control-request-headers": "x-a: 1",
            },
        )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == origins.allowed
    assert "POST" in allowed.headers["access-control-allow-methods"]
    allow_headers = {h.strip() for h in allowed.headers["access-control-allow-headers"].split(",")}
    # Headers a client asks for are allowed too (the JS SDK's helpers add their own).
    assert {"authorization", "content-type", "x-stainless-helper-method"} <= allow_headers
    # ...when they are a list of names; anything else is not echoed.
    assert odd.status_code == 204
    assert "x-a" not in odd.headers["access-control-allow-headers"]
    assert "authorization" in odd.headers["access-control-allow-headers"]
    assert "Origin" in allowed.headers["vary"]
    assert "access-control-allow-origin" not in refused.headers
    assert post.status_code == 200
    assert post.headers["access-control-allow-origin"] == origins.allowed
    assert "x-request-id" in post.headers["access-control-expose-headers"]
    assert post_other.status_code == 200
    assert "access-control-allow-origin" not in post_other.headers
    # Errors carry the CORS headers too, so a page can read why it was refused.
    assert no_key.status_code == 401
    assert no_key.headers["access-control-allow-origin"] == origins.allowed
