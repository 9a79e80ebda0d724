"""SIGHUP keeps what startup learned and what the upstreams are doing: TEI batch sizes,
tokenizers, Hub templates, cooldowns, in-flight counts, rate windows; a model the reload adds
gets what startup would have learned for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry

from shim.app import create_app
from shim.lifecycle import reload_config
from shim.loader import load_config
from shim.services import Services
from tests.conftest import FAKE
from tests.fake_clock import FakeClock, until
from tests.fake_hf import FakeHF, Reply

HF = f'[huggingface]\nbase_url = "{FAKE}"\nhub_url = "{FAKE}/hub"\ncache_dir = "{{cache}}"\n'
TEI = f'[models.emb]\ntask = "feature-extraction"\nurl = "{FAKE}/tei"\n'
PAIR = (
    f'[models.pair]\ntask = "text-generation"\nurl = ["{FAKE}/a", "{FAKE}/b"]\n'
    'chat_template = "chatml"\nretries = 1\ncooldown_after = 1\ncooldown = 60\n'
)
HUBBED = f'[models.hubbed]\ntask = "text-generation"\nurl = "{FAKE}/tgi"\nhf_model = "org/model"\n'
USER = [{"role": "user", "content": "Hi"}]


class Shim:
    """The app on a config file that the test rewrites and reloads."""

    def __init__(self, path: Path, client: AsyncTestClient[Litestar]) -> None:
        self.path = path
        self.client = client
        self.services: Services = client.app.state.shim

    def reload(self, text: str) -> None:
        self.path.write_text(text)
        assert reload_config(self.services)

    async def chat(self, model: str) -> Any:
        return await self.client.post(
            "/v1/chat/completions", json={"model": model, "messages": USER}
        )


@contextlib.asynccontextmanager
async def shim(fake: FakeHF, tmp_path: Path, text: str, **options: Any) -> AsyncIterator[Shim]:
    path = tmp_path / "shim.toml"
    path.write_text(text)
    app = create_app(
        load_config(path), transport=fake.transport(), registry=CollectorRegistry(), **options
    )
    async with AsyncTestClient(app=app) as client:
        yield Shim(path, client)


async def test_tei_batch_size_survives_a_reload(fake: FakeHF, tmp_path: Path) -> None:
    text = HF.format(cache=tmp_path) + TEI
    async with shim(fake, tmp_path, text) as s:
        fake.script("/tei/info", Reply(503, body=b""))  # were it asked again, it would not say
        s.reload(text + PAIR)
        r = await s.client.post("/v1/embeddings", json={"model": "emb", "input": ["x"] * 10})
    assert r.status_code == 200
    assert len(fake.requests("/tei/info")) == 1
    # /info said 4 at startup: 10 inputs went in batches of 4, 4 and 2.
    assert [len(seen.json()["inputs"]) for seen in fake.requests("/tei/embed")] == [4, 4, 2]


async def test_tokenizer_survives_a_reload(fake: FakeHF, tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers", reason="the optional tokenizers package")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    file = tmp_path / "tok.json"
    file.write_text(tokenizer.to_str())
    text = HF.format(cache=tmp_path) + TEI + f'tokenizer = "{file}"\nmax_batch_size = 8\n'
    async with shim(fake, tmp_path, text) as s:
        route = s.services.active.router.routes["emb"]
        await until(lambda: s.services.discovery.tokenizer(route) is not None)
        file.unlink()  # were it read again, it would not be there
        s.reload(text + PAIR)
        route = s.services.active.router.routes["emb"]
        assert s.services.discovery.tokenizer(route) is not None
        r = await s.client.post("/v1/embeddings", json={"model": "emb", "input": "a b c d"})
    assert r.json()["usage"]["prompt_tokens"] == 4  # counted by the tokenizer, not estimated


async def test_cooldown_survives_a_reload(fake: FakeHF, tmp_path: Path) -> None:
    fake.script("/a/generate", Reply(500, body=b"a is down"))
    text = HF.format(cache=tmp_path) + PAIR
    async with shim(fake, tmp_path, text, clock=FakeClock()) as s:
        assert (await s.chat("pair")).status_code == 200  # `a` failed once: it rests 60 s
        s.reload(text + TEI)
        for _ in range(4):
            assert (await s.chat("pair")).status_code == 200
    assert len(fake.requests("/a/generate")) == 1
    assert len(fake.requests("/b/generate")) == 5


async def test_a_changed_upstream_list_keeps_the_state_of_the_unchanged_ones(
    fake: FakeHF, tmp_path: Path
) -> None:
    fake.script("/a/generate", Reply(500, body=b"a is down"))
    text = HF.format(cache=tmp_path) + PAIR
    async with shim(fake, tmp_path, text, clock=FakeClock()) as s:
        assert (await s.chat("pair")).status_code == 200
        s.reload(text.replace(f'"{FAKE}/b"]', f'"{FAKE}/b", "{FAKE}/c"]'))
        for _ in range(6):
            assert (await s.chat("pair")).status_code == 200
        states = s.services.active.pools["pair"].states
    assert len(fake.requests("/a/generate")) == 1  # still resting
    assert len(fake.requests("/c/generate")) > 0  # the new one is used
    assert [state.in_flight for state in states] == [0, 0, 0]


async def test_a_model_added_by_a_reload_gets_its_hub_template(
    fake: FakeHF, tmp_path: Path
) -> None:
    fake.script(
        "/hub/org/model/resolve/main/tokenizer_config.json",
        Reply(json={"chat_template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<bot>"}),
    )  # fmt: skip
    text = HF.format(cache=tmp_path) + PAIR
    async with shim(fake, tmp_path, text) as s:
        s.reload(text + HUBBED)
        route = s.services.active.router.routes["hubbed"]
        await until(lambda: s.services.discovery.template(route) is not None)
        r = await s.chat("hubbed")
    assert r.status_code == 200, r.text
    assert fake.requests("/tgi/generate")[-1].json()["inputs"] == "<user>Hi<bot>"


async def test_rate_windows_survive_a_reload_and_follow_new_limits(
    fake: FakeHF, tmp_path: Path
) -> None:
    key = '[server]\n[[server.keys]]\nkey = "k"\nname = "team"\nrpm = 1\n'
    text = key + HF.format(cache=tmp_path) + PAIR
    headers = {"authorization": "Bearer k"}
    body = {"model": "pair", "messages": USER}
    async with shim(fake, tmp_path, text, clock=FakeClock()) as s:
        post = s.client.post
        assert (await post("/v1/chat/completions", json=body, headers=headers)).status_code == 200
        s.reload(text + TEI)
        assert (await post("/v1/chat/completions", json=body, headers=headers)).status_code == 429
        s.reload(text.replace("rpm = 1", "rpm = 2"))  # the same counts, under the new limit
        assert (await post("/v1/chat/completions", json=body, headers=headers)).status_code == 200


async def test_a_changed_max_concurrency_gets_a_new_slot_pool(fake: FakeHF, tmp_path: Path) -> None:
    text = HF.format(cache=tmp_path) + PAIR + "max_concurrency = 1\n"
    async with shim(fake, tmp_path, text) as s:
        before = s.services.active.slots["pair"]
        s.reload(text + TEI)
        assert s.services.active.slots["pair"] is before
        s.reload(text.replace("max_concurrency = 1", "max_concurrency = 2"))
        assert s.services.active.slots["pair"] is not before
        assert (await s.chat("pair")).status_code == 200
