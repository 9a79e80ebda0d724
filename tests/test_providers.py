"""Inference Providers: ``provider`` resolved at startup from a fake Hub's mapping (the real
response shapes: the list form and the older object form), chat as ``hf_model:provider`` on the
router, embeddings on ``{base_url}/{provider}/v1/embeddings`` with the provider's id."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from shim.config import ConfigError
from shim.providers import ProviderKey, entries_of, resolve
from tests.conftest import FAKE, app_client, make_config
from tests.fake_hf import FakeHF, Reply

MAPPING_PATH = "/hub/api/models/{}"

# As the Hub answers `GET /api/models/{id}?expand[]=inferenceProviderMapping` (huggingface.js
# normalises both forms: a list of entries, or, from older Hubs, an object keyed by provider).
LIST_FORM = {
    "_id": "x",
    "id": "BAAI/bge-m3",
    "inferenceProviderMapping": [
        {"provider": "nebius", "providerId": "BAAI/bge-m3-nebius", "status": "live",
         "task": "feature-extraction", "hfModelId": "BAAI/bge-m3", "type": "single-model"},
        {"provider": "hf-inference", "providerId": "BAAI/bge-m3", "status": "live",
         "task": "feature-extraction"},
        {"provider": "sambanova", "providerId": "E5-Mistral", "status": "error",
         "task": "feature-extraction"},
    ],
}  # fmt: skip
OBJECT_FORM = {
    "id": "meta-llama/Llama-3.1-8B-Instruct",
    "inferenceProviderMapping": {
        "together": {"providerId": "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
                     "status": "live", "task": "conversational"},
        "novita": {"providerId": "meta-llama/llama-3.1-8b-instruct", "status": "staging",
                   "task": "conversational"},
    },
}  # fmt: skip


def key(provider: str, task: Any, model: str = "m") -> ProviderKey:
    return ProviderKey("http://hub", model, provider, task, "/tmp")


RESOLVE = [
    pytest.param(LIST_FORM, "nebius", "feature-extraction", "BAAI/bge-m3-nebius", id="list-live"),
    pytest.param(LIST_FORM, "sambanova", "feature-extraction", None, id="list-error-status"),
    pytest.param(LIST_FORM, "together", "feature-extraction", None, id="list-absent"),
    pytest.param(LIST_FORM, "nebius", "text-generation", None, id="list-other-task"),
    pytest.param(OBJECT_FORM, "together", "text-generation",
                 "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", id="object-live"),
    pytest.param(OBJECT_FORM, "novita", "text-generation", "meta-llama/llama-3.1-8b-instruct",
                 id="object-staging"),
    pytest.param({"id": "x"}, "together", "text-generation", None, id="no-mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "provider", "task", "expected"), RESOLVE)
def test_resolve(body: Any, provider: str, task: Any, expected: str | None) -> None:
    import json

    entries = entries_of(json.dumps(body).encode())
    assert resolve(entries, key(provider, task)).provider_id == expected


def models(cache: Path, *, emb: str = "nebius", chat: str = "together") -> str:
    return f"""
[huggingface]
token = "hf_test_token_abcdef"
base_url = "{FAKE}"
hub_url = "{FAKE}/hub"
cache_dir = "{cache}"
[models.emb]
task = "feature-extraction"
hf_model = "BAAI/bge-m3"
provider = "{emb}"
retries = 0
[models.chat]
task = "text-generation"
hf_model = "meta-llama/Llama-3.1-8B-Instruct"
provider = "{chat}"
retries = 0
"""


def hub(fake: FakeHF) -> None:
    fake.script(MAPPING_PATH.format("BAAI/bge-m3"), Reply(json=LIST_FORM))
    fake.script(MAPPING_PATH.format("meta-llama/Llama-3.1-8B-Instruct"), Reply(json=OBJECT_FORM))


async def test_embeddings_go_to_the_provider_with_its_id(fake: FakeHF, tmp_path: Path) -> None:
    hub(fake)
    async with app_client(fake, make_config(models(tmp_path))) as client:
        r = await client.post(
            "/v1/embeddings", json={"model": "emb", "input": ["a", "b"], "encoding_format": "float"}
        )
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2
    [seen] = fake.requests("/nebius/v1/embeddings")
    assert seen.json()["model"] == "BAAI/bge-m3-nebius"
    assert seen.headers["authorization"] == "Bearer hf_test_token_abcdef"
    # The mapping was fetched once, with the token, and cached on disk.
    [lookup] = fake.requests(MAPPING_PATH.format("BAAI/bge-m3"))
    assert lookup.headers["authorization"] == "Bearer hf_test_token_abcdef"
    assert (tmp_path / "BAAI--bge-m3--providers.json").exists()


async def test_chat_names_the_provider_to_the_router(fake: FakeHF, tmp_path: Path) -> None:
    hub(fake)
    async with app_client(fake, make_config(models(tmp_path))) as client:
        r = await client.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "chat"
    [seen] = fake.requests("/v1/chat/completions")
    assert seen.json()["model"] == "meta-llama/Llama-3.1-8B-Instruct:together"


@pytest.mark.parametrize("policy", ["fastest", "cheapest"])
async def test_chat_policies_need_no_lookup(fake: FakeHF, tmp_path: Path, policy: str) -> None:
    async with app_client(fake, make_config(models(tmp_path, chat=policy))) as client:
        r = await client.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert r.status_code == 200
    assert fake.requests("/v1/chat/completions")[0].json()["model"].endswith(f":{policy}")
    assert not fake.requests(MAPPING_PATH.format("meta-llama/Llama-3.1-8B-Instruct"))


@pytest.mark.parametrize(
    ("emb", "chat", "model", "path"),
    [
        ("sambanova", "together", "emb", "/v1/embeddings"),
        ("nebius", "cerebras", "chat", "/v1/chat/completions"),
    ],
    ids=["embeddings-error-status", "chat-unmapped"],
)
async def test_a_model_the_provider_does_not_serve(
    fake: FakeHF, tmp_path: Path, caplog: pytest.LogCaptureFixture, emb: str, chat: str,
    model: str, path: str,
) -> None:  # fmt: skip
    hub(fake)
    body: dict[str, Any] = (
        {"model": model, "input": "a"}
        if model == "emb"
        else {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    async with app_client(fake, make_config(models(tmp_path, emb=emb, chat=chat))) as client:
        r = await client.post(path, json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "model_not_supported_by_provider"
    assert "does not serve" in error["message"]
    warned = [x for x in caplog.records if x.levelno == logging.WARNING and "does not serve" in
              x.getMessage()]  # fmt: skip
    assert warned
    # Nothing was sent upstream.
    assert not [s for s in fake.requests() if s.method == "POST"]


async def test_an_unreachable_hub_sends_the_hub_id(fake: FakeHF, tmp_path: Path) -> None:
    fake.script(MAPPING_PATH.format("BAAI/bge-m3"), Reply(500, json={"error": "down"}))
    async with app_client(fake, make_config(models(tmp_path))) as client:
        r = await client.post("/v1/embeddings", json={"model": "emb", "input": "a"})
    assert r.status_code == 200
    assert fake.requests("/nebius/v1/embeddings")[0].json()["model"] == "BAAI/bge-m3"


async def test_the_cached_mapping_is_used_at_the_next_start(fake: FakeHF, tmp_path: Path) -> None:
    hub(fake)
    async with app_client(fake, make_config(models(tmp_path))):
        pass
    async with app_client(fake, make_config(models(tmp_path))) as client:
        r = await client.post("/v1/embeddings", json={"model": "emb", "input": "a"})
    assert r.status_code == 200
    assert len(fake.requests(MAPPING_PATH.format("BAAI/bge-m3"))) == 1


CONFIG_ERRORS = [
    pytest.param('task = "feature-extraction"\nurl = "http://x"\nhf_model = "a/b"\nprovider = "nebius"',
                 "for serverless models only", id="with-url"),
    pytest.param('task = "text-ranking"\nhf_model = "a/b"\nprovider = "nebius"',
                 "hf-inference only", id="rerank"),
    pytest.param('task = "feature-extraction"\nhf_model = "a/b"\nprovider = "fastest"',
                 "chat policy", id="embeddings-policy"),
    pytest.param('task = "feature-extraction"\nhf_model = "a/b"\nprovider = "nebius"\nprotocol = "pipeline"',
                 "providers speak `openai`", id="protocol"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "message"), CONFIG_ERRORS)
def test_provider_config_errors(model: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(f"[models.m]\n{model}\n")


def test_hf_inference_keeps_the_pipeline_routes() -> None:
    from shim.routing import Router

    config = make_config(
        f'[huggingface]\nbase_url = "{FAKE}"\n[models.m]\ntask = "feature-extraction"\n'
        'hf_model = "a/b"\nprovider = "hf-inference"\n'
    )
    route = Router(config).routes["m"]
    assert route.protocol == "pipeline"
    assert route.provider_key is None
    assert route.upstreams[0].base.endswith("/hf-inference/models/a/b/pipeline/feature-extraction")


async def test_shim_check_prints_the_provider_and_resolved_id(
    fake: FakeHF, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shim.__main__ import main

    path = tmp_path / "shim.toml"
    path.write_text(models(tmp_path))
    assert main(["check", "--config", str(path)]) == 0
    before = capsys.readouterr().out
    assert "emb -> feature-extraction, openai, http://fake-hf.test/nebius/v1" in before
    assert "provider: nebius (resolved at startup)" in before
    assert "provider: together (meta-llama/Llama-3.1-8B-Instruct:together; resolved" in before
    hub(fake)
    async with app_client(fake, make_config(models(tmp_path))):
        pass  # startup resolves and caches the mapping
    assert main(["check", "--config", str(path)]) == 0
    after = capsys.readouterr().out
    assert "provider: nebius (id BAAI/bge-m3-nebius, cached)" in after
    assert "Instruct:together; id meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo, cached)" in after
    assert "hf_test_token_abcdef" not in before + after


async def test_the_responses_api_names_the_provider_too(fake: FakeHF, tmp_path: Path) -> None:
    hub(fake)
    async with app_client(fake, make_config(models(tmp_path))) as client:
        r = await client.post("/v1/responses", json={"model": "chat", "input": "hi"})
    assert r.status_code == 200, r.text
    [seen] = fake.requests("/v1/chat/completions")
    assert seen.json()["model"] == "meta-llama/Llama-3.1-8B-Instruct:together"
