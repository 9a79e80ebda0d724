"""Token counts with the model's tokenizer (a fake Hub serving a real ``tokenizer.json``): the
usage of answers whose upstream reports none, and pipelines' ``length`` decided exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import FAKE, app_client, make_config
from tests.fake_hf import FakeHF, Reply

tokenizers = pytest.importorskip("tokenizers", reason="the optional tokenizers package counts")

WORDS = ["<s>", "[UNK]", "hello", "world", "a", "the", "<|im_start|>", "<|im_end|>", "user"]


def word_tokenizer() -> Any:
    """One token per word, and a BOS the model adds to every input (as Llama's does)."""
    vocab = {word: i for i, word in enumerate(WORDS)}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = tokenizers.processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 0)]
    )
    return tokenizer


def models(cache: Path, tokenizer: str = "auto") -> str:
    return f"""
[huggingface]
base_url = "{FAKE}"
hub_url = "{FAKE}/hub"
cache_dir = "{cache}"
[models.gen]
task = "text-generation"
url = "{FAKE}/gen"
protocol = "pipeline"
hf_model = "org/gen"
chat_template = "chatml"
tokenizer = "{tokenizer}"
retries = 0
[models.tgi]
task = "text-generation"
url = "{FAKE}/tgi"
hf_model = "org/tgi"
chat_template = "chatml"
"""


async def learned(client: AsyncTestClient[Litestar], name: str = "gen") -> None:
    services = client.app.state.shim
    route = services.active.router.routes[name]
    for _ in range(200):  # learned in the background after startup
        if services.discovery.tokenizer(route) is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the tokenizer was never learned")


def generated(words: int) -> Reply:
    return Reply(json=[{"generated_text": " ".join(["a"] * words)}])


@pytest.fixture
def hub(fake: FakeHF) -> FakeHF:
    body = word_tokenizer().to_str().encode()
    fake.script("/hub/org/gen/resolve/main/tokenizer.json", Reply(body=body))
    return fake


LENGTH = [
    # (words generated, max_tokens, tokenizer, finish_reason, completion_tokens)
    pytest.param(20, 20, "auto", "length", 20, id="whole-budget-is-length"),
    pytest.param(19, 20, "auto", "stop", 19, id="one-short-is-stop"),
    # The estimate (39 characters / 4) undercounts "a a a ...": what the tokenizer fixes.
    pytest.param(20, 20, "none", "stop", 10, id="estimate-undercounts"),
]  # fmt: skip


@pytest.mark.parametrize(("words", "max_tokens", "tokenizer", "finish", "completion"), LENGTH)
async def test_pipeline_length_is_decided_with_the_tokenizer(
    hub: FakeHF, tmp_path: Path, words: int, max_tokens: int, tokenizer: str, finish: str,
    completion: int,
) -> None:  # fmt: skip
    hub.script("/gen", generated(words))
    async with app_client(hub, make_config(models(tmp_path, tokenizer))) as client:
        if tokenizer != "none":
            await learned(client)
        r = await client.post(
            "/v1/completions",
            json={"model": "gen", "prompt": "hello world", "max_tokens": max_tokens},
        )
    body = r.json()
    assert body["choices"][0]["finish_reason"] == finish
    # "hello world": BOS + 2 words with the tokenizer; (11 + 3) // 4 estimated.
    assert body["usage"]["prompt_tokens"] == 3
    assert body["usage"]["completion_tokens"] == completion
    fetched = hub.requests("/hub/org/gen/resolve/main/tokenizer.json")
    assert len(fetched) == (0 if tokenizer == "none" else 1)


async def test_chat_and_streams_are_counted_too(hub: FakeHF, tmp_path: Path) -> None:
    hub.script("/gen", generated(20), generated(20))
    chat = {"model": "gen", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20}
    async with app_client(hub, make_config(models(tmp_path))) as client:
        await learned(client)
        whole = (await client.post("/v1/chat/completions", json=chat)).json()
        streamed = await client.post(
            "/v1/chat/completions",
            json={**chat, "stream": True, "stream_options": {"include_usage": True}},
        )
    assert whole["choices"][0]["finish_reason"] == "length"
    # The rendered chatml prompt split at whitespace: BOS, "<|im_start|>user",
    # "hello<|im_end|>", "<|im_start|>assistant" (unknown words count one each).
    assert whole["usage"]["prompt_tokens"] == 4
    assert whole["usage"]["completion_tokens"] == 20
    assert '"finish_reason":"length"' in streamed.text
    assert '"completion_tokens":20' in streamed.text


async def test_long_texts_are_counted_off_the_event_loop(hub: FakeHF, tmp_path: Path) -> None:
    # Over the inline limit: encoded in a worker thread, counted the same.
    hub.script("/gen", generated(300))
    async with app_client(hub, make_config(models(tmp_path))) as client:
        await learned(client)
        r = await client.post(
            "/v1/completions",
            json={"model": "gen", "prompt": " ".join(["hello"] * 500), "max_tokens": 400},
        )
    usage = r.json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (501, 300)
    assert r.json()["choices"][0]["finish_reason"] == "stop"


async def test_auto_fetches_only_where_the_upstream_counts_nothing(
    hub: FakeHF, tmp_path: Path
) -> None:
    async with app_client(hub, make_config(models(tmp_path))) as client:
        await learned(client)
    # TGI reports its counts: its tokenizer is not fetched. The pipeline's is, and cached.
    assert not hub.requests("/hub/org/tgi/resolve/main/tokenizer.json")
    assert (tmp_path / "org--gen--tokenizer.json").exists()
    # The next start reads the cache, not the Hub.
    async with app_client(hub, make_config(models(tmp_path))) as client:
        await learned(client)
    assert len(hub.requests("/hub/org/gen/resolve/main/tokenizer.json")) == 1


async def test_hub_without_a_tokenizer_falls_back_to_the_estimate(
    fake: FakeHF, tmp_path: Path
) -> None:
    fake.script("/gen", generated(20))
    async with app_client(fake, make_config(models(tmp_path))) as client:
        for _ in range(20):
            if fake.requests("/hub/org/gen/resolve/main/tokenizer.json"):
                break
            await asyncio.sleep(0.01)
        r = await client.post(
            "/v1/completions", json={"model": "gen", "prompt": "hello world", "max_tokens": 20}
        )
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 10  # estimated: 39 characters / 4
