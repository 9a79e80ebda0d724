"""/v1/embeddings end to end through the app, a fake TEI / pipeline / OpenAI-style upstream."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

import pytest

from tests.conftest import FAKE, app_client, make_config
from tests.fake_hf import FakeHF, Reply, Seen, vector

MODELS = f"""
[huggingface]
base_url = "{FAKE}"
[models.tei]
task = "feature-extraction"
url = "{FAKE}/tei"
max_batch_size = 3
retries = 0
[models.tei-auto]
task = "feature-extraction"
url = "{FAKE}/auto"
[models.serverless]
task = "feature-extraction"
hf_model = "sentence-transformers/all-MiniLM-L6-v2"
[models.oai]
task = "feature-extraction"
url = "{FAKE}/oai"
protocol = "openai"
hf_model = "BAAI/bge-small-en-v1.5"
dimensions = true
[models.oai-ids]
task = "feature-extraction"
url = "{FAKE}/oai"
protocol = "openai"
hf_model = "BAAI/bge-small-en-v1.5"
token_ids = "model"
[models.serverless-ids]
task = "feature-extraction"
hf_model = "sentence-transformers/all-MiniLM-L6-v2"
token_ids = "model"
[models.tei-reject]
task = "feature-extraction"
url = "{FAKE}/tei"
token_ids = "reject"
"""


def decode(item: dict[str, Any]) -> list[float]:
    raw = base64.b64decode(item["embedding"])
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


@pytest.fixture
async def client(fake: FakeHF) -> Any:
    async with app_client(fake, make_config(MODELS)) as c:
        yield c


async def test_batches_split_concurrently_and_reassembled_in_order(
    client: Any, fake: FakeHF
) -> None:
    texts = [f"text number {i}" for i in range(8)]
    r = await client.post("/v1/embeddings", json={"model": "tei", "input": texts})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["index"] for d in data] == list(range(8))
    for text, item in zip(texts, data, strict=True):
        assert item["embedding"] == pytest.approx(vector(text))
    sent = [s.json()["inputs"] for s in fake.requests("/tei/embed")]
    assert sorted(map(len, sent)) == [2, 3, 3]
    assert sorted(t for batch in sent for t in batch) == sorted(texts)


async def test_one_failed_batch_fails_the_request(client: Any, fake: FakeHF) -> None:
    def fail_third(seen: Seen) -> Reply:
        if "text 6" in seen.json()["inputs"]:
            return Reply(
                413,
                json={
                    "error": "Input validation error: `inputs` must have less than 512 tokens. Given: 600",
                    "error_type": "Validation",
                },
            )
        return fake.default(seen)

    for _ in range(3):
        fake.script("/tei/embed", fail_third)
    r = await client.post(
        "/v1/embeddings", json={"model": "tei", "input": [f"text {i}" for i in range(8)]}
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"
    assert "data" not in r.json()


async def test_tei_info_sets_batch_size_at_startup(client: Any, fake: FakeHF) -> None:
    assert len(fake.requests("/auto/info")) == 1
    await client.post(
        "/v1/embeddings", json={"model": "tei-auto", "input": [str(i) for i in range(9)]}
    )
    assert sorted(len(s.json()["inputs"]) for s in fake.requests("/auto/embed")) == [1, 4, 4]


@pytest.mark.parametrize("model", ["tei", "serverless", "oai"])
async def test_base64_and_float_agree(client: Any, model: str) -> None:
    body = {"model": model, "input": ["alpha", "beta"]}
    floats = (await client.post("/v1/embeddings", json={**body, "encoding_format": "float"})).json()
    b64 = (await client.post("/v1/embeddings", json={**body, "encoding_format": "base64"})).json()
    for f, b in zip(floats["data"], b64["data"], strict=True):
        assert decode(b) == pytest.approx(f["embedding"], abs=1e-6)
        assert sum(x * x for x in f["embedding"]) == pytest.approx(1.0, abs=1e-6)
    assert floats["object"] == "list" and floats["model"] == model
    assert floats["usage"]["prompt_tokens"] == floats["usage"]["total_tokens"] > 0
    assert "completion_tokens" not in floats["usage"]


async def test_serverless_pipeline_route_and_pooling(client: Any, fake: FakeHF) -> None:
    r = await client.post("/v1/embeddings", json={"model": "serverless", "input": "hello"})
    assert r.status_code == 200
    seen = fake.requests(
        "/hf-inference/models/sentence-transformers/all-MiniLM-L6-v2/pipeline/feature-extraction"
    )
    assert seen[-1].json() == {"inputs": ["hello"]}
    # The fake answers token-level vectors: shim mean-pools all 3 tokens, then normalises.
    tokens = [vector("hello" + str(t)) for t in range(3)]
    mean = [sum(c) / 3 for c in zip(*tokens, strict=True)]
    norm = sum(x * x for x in mean) ** 0.5
    assert r.json()["data"][0]["embedding"] == pytest.approx([x / norm for x in mean])


async def test_openai_style_upstream_and_usage(client: Any, fake: FakeHF) -> None:
    # token_ids = "model": the ids are the model's own and go through as sent.
    r = await client.post("/v1/embeddings", json={"model": "oai-ids", "input": [[1, 2, 3], [4, 5]]})
    assert r.status_code == 200
    sent = fake.requests("/oai/v1/embeddings")[-1].json()
    assert sent == {
        "input": [[1, 2, 3], [4, 5]],
        "model": "BAAI/bge-small-en-v1.5",
        "encoding_format": "float",
    }
    assert r.json()["usage"]["prompt_tokens"] == 6  # as the upstream reported


async def test_dimensions(client: Any) -> None:
    r = await client.post("/v1/embeddings", json={"model": "oai", "input": "x", "dimensions": 4})
    vec = r.json()["data"][0]["embedding"]
    assert len(vec) == 4 and sum(v * v for v in vec) == pytest.approx(1.0)
    r = await client.post("/v1/embeddings", json={"model": "tei", "input": "x", "dimensions": 4})
    assert r.status_code == 400 and r.json()["error"]["param"] == "dimensions"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["a", ""]}, "input[1]"),
        ({"input": 5}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
async def test_bad_inputs(client: Any, body: dict[str, Any], param: str) -> None:
    r = await client.post("/v1/embeddings", json={"model": "tei", **body})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


async def test_token_ids_rejected_where_unsupported(client: Any) -> None:
    r = await client.post("/v1/embeddings", json={"model": "serverless-ids", "input": [1, 2]})
    assert r.status_code == 400 and "Token-id" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(422, json={"message": "bad", "code": 422, "type": "Validation"}), 400),
        (Reply(424, json={"error": "Backend error", "error_type": "Backend"}), 502),
        (Reply(503, json={"error": "Model x is currently loading", "estimated_time": 0.01}), 200),
        (Reply(200, json=[["not", "numbers"]]), 502),
        (Reply(200, json=[[1.0], [2.0]]), 502),
    ],
    ids=["tei-openai-validation", "backend", "loading-then-ok", "strings", "count-mismatch"],
)
async def test_upstream_errors(client: Any, fake: FakeHF, reply: Reply, status: int) -> None:
    fake.script("/tei/embed", reply)
    r = await client.post("/v1/embeddings", json={"model": "tei", "input": "x"})
    assert r.status_code == status, r.text


async def test_tei_float_answers_pass_through_verbatim(client: Any, fake: FakeHF) -> None:
    numbers = [[0.1, -2.5e-05, 3.0], [1e-07, 0.0, -1.0]]
    fake.script(
        "/tei/embed",
        Reply(body=json.dumps(numbers).encode(), headers={"content-type": "application/json"}),
    )
    r = await client.post("/v1/embeddings", json={"model": "tei", "input": ["a", "b"]})
    # The upstream's own number text is kept (nothing parsed and re-printed).
    assert '"embedding":[0.1, -2.5e-05, 3.0]' in r.text
    assert [d["embedding"] for d in r.json()["data"]] == numbers


async def test_openai_upstream_asked_for_base64_when_the_client_is(
    client: Any, fake: FakeHF
) -> None:
    r = await client.post(
        "/v1/embeddings", json={"model": "oai", "input": ["x", "y"], "encoding_format": "base64"}
    )
    assert fake.requests("/oai/v1/embeddings")[-1].json()["encoding_format"] == "base64"
    assert [decode(d) for d in r.json()["data"]] == [
        pytest.approx(vector(t), abs=1e-6) for t in ("x", "y")
    ]


async def test_openai_upstream_ignoring_base64_is_converted(client: Any, fake: FakeHF) -> None:
    reply = {
        "data": [{"index": 0, "embedding": [0.5, -0.25]}],
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    fake.script("/oai/v1/embeddings", Reply(json=reply))
    r = await client.post(
        "/v1/embeddings", json={"model": "oai", "input": "x", "encoding_format": "base64"}
    )
    assert decode(r.json()["data"][0]) == [0.5, -0.25]


async def test_prompt_tokens_counted_with_the_models_tokenizer(fake: FakeHF, tmp_path: Any) -> None:
    tokenizers = pytest.importorskip(
        "tokenizers", reason="the optional tokenizers package counts tokens"
    )
    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "hello": 3, "world": 4}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fake.script("/hub/org/emb/resolve/main/tokenizer.json", Reply(body=tokenizer.to_str().encode()))
    models = f"""
[huggingface]
base_url = "{FAKE}"
hub_url = "{FAKE}/hub"
cache_dir = "{tmp_path}"
[models.counted]
task = "feature-extraction"
url = "{FAKE}/tei"
hf_model = "org/emb"
tokenizer = "hub"
[models.uncounted]
task = "feature-extraction"
url = "{FAKE}/tei"
hf_model = "org/other"
"""
    async with app_client(fake, make_config(models)) as client:
        services = client.app.state.shim
        route = services.active.router.routes["counted"]
        for _ in range(100):  # loaded in the background after startup
            if services.discovery.tokenizer(route) is not None:
                break
            await asyncio.sleep(0.01)
        r = await client.post(
            "/v1/embeddings", json={"model": "counted", "input": ["hello world", "hello there you"]}
        )
    # 2 + 3 words, as the tokenizer splits them (the upstream reported no count).
    assert r.json()["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert (tmp_path / "org--emb--tokenizer.json").exists()
    # Only where configured: nothing else is fetched from the Hub.
    assert not fake.requests("/hub/org/other/resolve/main/tokenizer.json")


async def test_tokenizer_from_a_file(fake: FakeHF, tmp_path: Any) -> None:
    tokenizers = pytest.importorskip(
        "tokenizers", reason="the optional tokenizers package counts tokens"
    )
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    (tmp_path / "tok.json").write_text(tokenizer.to_str())
    config = make_config(
        f'[models.m]\ntask = "feature-extraction"\nurl = "{FAKE}/tei"\n'
        f'tokenizer = "{tmp_path / "tok.json"}"\n'
    )
    async with app_client(fake, config) as client:
        services = client.app.state.shim
        route = services.active.router.routes["m"]
        for _ in range(100):
            if services.discovery.tokenizer(route) is not None:
                break
            await asyncio.sleep(0.01)
        r = await client.post("/v1/embeddings", json={"model": "m", "input": "a b c d"})
    assert r.json()["usage"]["prompt_tokens"] == 4


# --- token-id inputs ---------------------------------------------------------------------------

#: cl100k_base ids of these texts (as tiktoken encodes them).
HELLO_WORLD = [15339, 1917]
CAFE = [
    9906,
    289,
    9603,
    509,
    2001,
    95980,
    588,
    53050,
    76502,
    22656,
    45918,
    252,
    43465,
    11410,
    236,
    231,
]
CAFE_TEXT = "Hello wörld — naïve café 日本語 emoji 🎉"


@pytest.mark.parametrize(
    ("model", "path", "field"),
    [
        ("tei", "/tei/embed", "inputs"),
        ("oai", "/oai/v1/embeddings", "input"),
        (
            "serverless",
            "/hf-inference/models/sentence-transformers/all-MiniLM-L6-v2/pipeline/feature-extraction",
            "inputs",
        ),
    ],
    ids=["tei", "openai", "pipeline"],
)
@pytest.mark.parametrize(
    ("ids", "texts"),
    [
        (HELLO_WORLD, ["hello world"]),
        ([HELLO_WORLD, CAFE], ["hello world", CAFE_TEXT]),
    ],
    ids=["flat", "nested"],
)
async def test_token_ids_are_decoded_as_cl100k_by_default(
    client: Any, fake: FakeHF, model: str, path: str, field: str, ids: Any, texts: list[str]
) -> None:
    by_ids = await client.post("/v1/embeddings", json={"model": model, "input": ids})
    assert by_ids.status_code == 200, by_ids.text
    assert fake.requests(path)[-1].json()[field] == texts
    by_text = await client.post("/v1/embeddings", json={"model": model, "input": texts})
    assert [d["embedding"] for d in by_ids.json()["data"]] == [
        d["embedding"] for d in by_text.json()["data"]
    ]


async def test_token_ids_model_mode_passes_ids(client: Any, fake: FakeHF) -> None:
    r = await client.post("/v1/embeddings", json={"model": "oai-ids", "input": HELLO_WORLD})
    assert r.status_code == 200
    assert fake.requests("/oai/v1/embeddings")[-1].json()["input"] == [HELLO_WORLD]


async def test_token_ids_reject_mode_names_langchains_switch(client: Any, fake: FakeHF) -> None:
    r = await client.post("/v1/embeddings", json={"model": "tei-reject", "input": [HELLO_WORLD]})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "input"
    assert "check_embedding_ctx_length=False" in error["message"]
    assert not fake.requests("/tei/embed")
    # Text is never affected by the mode.
    ok = await client.post("/v1/embeddings", json={"model": "tei-reject", "input": ["a"]})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("ids", "param"),
    [
        ([HELLO_WORLD, [100256]], "input[1]"),  # an unused id between the ranks and specials
        ([[5, -1]], "input[0]"),
        ([[10**6]], "input[0]"),
    ],
    ids=["unused", "negative", "too-large"],
)
async def test_ids_outside_cl100k_are_400(
    client: Any, fake: FakeHF, ids: list[list[int]], param: str
) -> None:
    r = await client.post("/v1/embeddings", json={"model": "tei", "input": ids})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param
    assert "cl100k_base" in r.json()["error"]["message"]
    assert not fake.requests("/tei/embed")


async def test_special_tokens_decode_to_their_text(client: Any, fake: FakeHF) -> None:
    r = await client.post("/v1/embeddings", json={"model": "tei", "input": [15339, 100257]})
    assert r.status_code == 200
    assert fake.requests("/tei/embed")[-1].json()["inputs"] == ["hello<|endoftext|>"]
