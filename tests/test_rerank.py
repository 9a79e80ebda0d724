"""/v1/rerank, /rerank and /v2/rerank end to end through the app, a fake TEI / toolkit
pipeline / vLLM-style upstream behind it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import FAKE, app_client, make_config
from tests.fake_hf import FakeHF, Reply, Seen, relevance, sigmoid

MODELS = f"""
[huggingface]
base_url = "{FAKE}"
[models.tei]
task = "text-ranking"
url = "{FAKE}/tei"
retries = 0
[models.tei-raw]
task = "text-ranking"
url = "{FAKE}/tei-raw"
raw_scores = true
truncate = true
max_batch_size = 2
retries = 0
[models.toolkit]
task = "text-ranking"
url = "{FAKE}/toolkit"
protocol = "pipeline"
retries = 0
[models.serverless]
task = "text-ranking"
hf_model = "BAAI/bge-reranker-base"
retries = 0
[models.vllm]
task = "text-ranking"
url = "{FAKE}/vllm/v1"
protocol = "openai"
hf_model = "served-reranker"
max_batch_size = 3
retries = 0
[models.embed]
task = "feature-extraction"
url = "{FAKE}/tei"
[models.small]
task = "text-ranking"
url = "{FAKE}/tei"
max_inputs = 3
"""

QUERY = "what is the capital of france"
DOCS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "The Eiffel Tower is in Paris.",
    "France is a country in Europe; its capital is Paris.",
    "Bananas are yellow.",
]
#: Where each model's upstream is called, and what each score is made of.
PROTOCOLS = {
    "tei": ("/tei/rerank", lambda q, t: sigmoid(relevance(q, t))),
    "tei-raw": ("/tei-raw/rerank", relevance),
    "toolkit": ("/toolkit", relevance),
    "serverless": ("/hf-inference/models/BAAI/bge-reranker-base", relevance),
    "vllm": ("/vllm/v1/rerank", lambda q, t: sigmoid(relevance(q, t))),
}


def expected(model: str, docs: list[str] = DOCS, query: str = QUERY) -> list[tuple[int, float]]:
    score = PROTOCOLS[model][1]
    values = [score(query, d) for d in docs]
    order = sorted(range(len(docs)), key=lambda i: -values[i])
    return [(i, values[i]) for i in order]


@pytest.fixture
async def client(fake: FakeHF) -> Any:
    async with app_client(fake, make_config(MODELS)) as c:
        yield c


def pairs(body: dict[str, Any]) -> list[tuple[int, float]]:
    return [(r["index"], r["relevance_score"]) for r in body["results"]]


def assert_ranked(body: dict[str, Any], want: list[tuple[int, float]]) -> None:
    """The same documents in the same order, each with its score (float-compared)."""
    got = pairs(body)
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want])


@pytest.mark.parametrize("model", PROTOCOLS)
async def test_every_protocol_ranks_best_first(client: Any, fake: FakeHF, model: str) -> None:
    r = await client.post("/v1/rerank", json={"model": model, "query": QUERY, "documents": DOCS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert_ranked(body, expected(model))
    assert [x["document"]["text"] for x in body["results"]] == [DOCS[i] for i, _ in expected(model)]
    assert body["model"] == model and len(body["id"]) == 32
    assert body["meta"] == {"billed_units": {"search_units": 1}}
    assert body["usage"]["total_tokens"] > 0
    assert fake.requests(PROTOCOLS[model][0])


async def test_what_each_upstream_is_sent(client: Any, fake: FakeHF) -> None:
    docs = ["a b", "c"]
    for model in PROTOCOLS:
        r = await client.post("/v1/rerank", json={"model": model, "query": "q", "documents": docs})
        assert r.status_code == 200, r.text
    sent = {model: fake.requests(path)[-1].json() for model, (path, _) in PROTOCOLS.items()}
    assert sent["tei"] == {"query": "q", "texts": docs, "raw_scores": False, "return_text": False}
    assert sent["tei-raw"] == {
        "query": "q", "texts": docs, "raw_scores": True, "return_text": False, "truncate": True
    }  # fmt: skip
    assert sent["toolkit"] == sent["serverless"] == {"inputs": [["q", "a b"], ["q", "c"]]}
    assert sent["vllm"] == {
        "model": "served-reranker", "query": "q", "documents": docs, "return_documents": False
    }  # fmt: skip


@pytest.mark.parametrize(
    ("model", "path", "sizes"),
    [
        # TEI's /info says max_client_batch_size = 4 (read at startup; the fake enforces it).
        ("tei", "/tei/rerank", [1, 4, 4]),
        ("tei-raw", "/tei-raw/rerank", [1, 2, 2, 2, 2]),
        ("vllm", "/vllm/v1/rerank", [3, 3, 3]),
    ],
    ids=["tei-info", "configured", "openai"],
)
async def test_batches_are_merged_with_their_offsets(
    client: Any, fake: FakeHF, model: str, path: str, sizes: list[int]
) -> None:
    docs = [f"doc {i} about " + " ".join(["capital"] * (i % 3)) + f" france{i}" for i in range(9)]
    r = await client.post(
        "/v1/rerank", json={"model": model, "query": "capital france", "documents": docs}
    )
    assert r.status_code == 200, r.text
    assert_ranked(r.json(), expected(model, docs, "capital france"))
    seen = fake.requests(path)
    field = "documents" if model == "vllm" else "texts"
    assert sorted(len(s.json()[field]) for s in seen) == sizes
    assert sorted(t for s in seen for t in s.json()[field]) == sorted(docs)


async def test_tei_batch_limit_comes_from_info(fake: FakeHF) -> None:
    # Three models share this TEI; each reads /info once at startup.
    for _ in range(3):
        fake.script("/tei/info", Reply(json={"model_id": "x", "max_client_batch_size": 2}))
    docs = [str(i) for i in range(5)]
    async with app_client(fake, make_config(MODELS)) as client:
        r = await client.post("/v1/rerank", json={"model": "tei", "query": "q", "documents": docs})
    assert r.status_code == 200
    assert sorted(len(s.json()["texts"]) for s in fake.requests("/tei/rerank")) == [1, 2, 2]


async def test_one_failed_batch_fails_the_request(client: Any, fake: FakeHF) -> None:
    def fail_second(seen: Seen) -> Reply:
        if "doc 3" in seen.json()["texts"]:
            return Reply(424, json={"error": "Backend error: boom", "error_type": "Backend"})
        return fake.default(seen)

    for _ in range(3):
        fake.script("/tei/rerank", fail_second)
    docs = [f"doc {i}" for i in range(9)]
    r = await client.post("/v1/rerank", json={"model": "tei", "query": "q", "documents": docs})
    assert r.status_code == 502
    assert "results" not in r.json() and r.json()["error"]["code"] == "upstream_error"


@pytest.mark.parametrize(
    ("fields", "count"),
    [({"top_n": 2}, 2), ({"top_n": 50}, 5), ({"top_n": None}, 5), ({}, 5)],
    ids=["top-n", "over", "null-as-dify-sends", "absent"],
)
async def test_top_n(client: Any, fields: dict[str, Any], count: int) -> None:
    body = {"model": "tei", "query": QUERY, "documents": DOCS, **fields}
    r = await client.post("/v1/rerank", json=body)
    assert r.status_code == 200
    assert_ranked(r.json(), expected("tei")[:count])


@pytest.mark.parametrize(
    ("path", "fields", "with_documents"),
    [
        ("/v1/rerank", {}, True),
        ("/rerank", {}, True),
        ("/v2/rerank", {}, False),
        ("/v1/rerank", {"return_documents": False}, False),
        ("/v2/rerank", {"return_documents": True}, True),
        ("/rerank", {"return_documents": None}, True),
    ],
    ids=["v1", "jina", "v2", "v1-off", "v2-on", "jina-null"],
)
async def test_routes_and_document_defaults(
    client: Any, path: str, fields: dict[str, Any], with_documents: bool
) -> None:
    body = {"model": "tei", "query": QUERY, "documents": DOCS, "top_n": 2, **fields}
    r = await client.post(path, json=body)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert_ranked(r.json(), expected("tei")[:2])
    assert all(("document" in x) is with_documents for x in results)


async def test_documents_as_objects_are_ranked_by_text(client: Any, fake: FakeHF) -> None:
    documents = [{"text": d, "title": f"t{i}"} for i, d in enumerate(DOCS)]
    body = {"model": "tei", "query": QUERY, "documents": documents, "rank_fields": ["title"]}
    r = await client.post("/v1/rerank", json={**body, "max_chunks_per_doc": 3})
    assert r.status_code == 200
    assert_ranked(r.json(), expected("tei"))
    assert r.json()["results"][0]["document"] == {"text": DOCS[expected("tei")[0][0]]}
    assert sorted(t for s in fake.requests("/tei/rerank") for t in s.json()["texts"]) == sorted(
        DOCS
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": QUERY, "documents": []}, "documents"),
        ({"query": "", "documents": DOCS}, "query"),
        ({"query": QUERY, "documents": DOCS, "top_n": 0}, "top_n"),
        ({"documents": DOCS}, "query"),
        ({"query": QUERY}, "documents"),
        ({"query": QUERY, "documents": ["a", {"title": "no text"}]}, "documents[1].text"),
        ({"query": QUERY, "documents": ["a", 5]}, "documents[1]"),
        ({"query": QUERY, "documents": DOCS, "top_n": "2"}, "top_n"),
    ],
    ids=["no-documents", "empty-query", "top-n-zero", "missing-query", "missing-documents",
         "object-without-text", "number", "top-n-string"],
)  # fmt: skip
async def test_bad_requests_name_the_field(
    client: Any, fake: FakeHF, body: dict[str, Any], param: str
) -> None:
    r = await client.post("/v2/rerank", json={"model": "tei", **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert not fake.requests("/tei/rerank")


async def test_max_inputs_limits_documents(client: Any) -> None:
    body = {"model": "small", "query": "q", "documents": ["a", "b", "c", "d"]}
    r = await client.post("/v1/rerank", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "documents"
    assert (await client.post("/v1/rerank", json={**body, "documents": ["a"]})).status_code == 200


async def test_model_errors(client: Any) -> None:
    r = await client.post("/v1/rerank", json={"model": "embed", "query": "q", "documents": ["a"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_task_mismatch"
    r = await client.post("/rerank", json={"model": "ghost", "query": "q", "documents": ["a"]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = await client.post(
        "/v1/embeddings", json={"model": "tei", "input": "a"}
    )  # a rerank model is not an embeddings model
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_task_mismatch"


@pytest.mark.parametrize(
    ("reply", "status", "code"),
    [
        (Reply(422, json={"error": "Input validation error: `inputs` must have less than 512 tokens. Given: 600", "error_type": "Validation"}), 400, "context_length_exceeded"),
        (Reply(424, json={"error": "model is not a re-ranker model", "error_type": "Backend"}), 502, "upstream_error"),
        (Reply(429, json={"error": "Model is overloaded", "error_type": "Overloaded"}), 429, "upstream_overloaded"),
        (Reply(200, json={"generated_text": "?"}), 502, "upstream_invalid_response"),
    ],
    ids=["validation", "not-a-reranker", "overloaded", "garbage"],
)  # fmt: skip
async def test_upstream_errors_use_the_envelope(
    client: Any, fake: FakeHF, reply: Reply, status: int, code: str
) -> None:
    fake.script("/tei/rerank", reply)
    r = await client.post("/v1/rerank", json={"model": "tei", "query": "q", "documents": ["a"]})
    assert r.status_code == status
    assert r.json()["error"]["code"] == code


async def test_models_lists_rerank_models(client: Any) -> None:
    ids = {m["id"] for m in (await client.get("/v1/models")).json()["data"]}
    assert {"tei", "toolkit", "serverless", "vllm"} <= ids


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    from shim.accesslog import ACCESS

    sink, previous = io.StringIO(), ACCESS.stream
    ACCESS.stream = sink
    try:
        yield sink
    finally:
        ACCESS.flush()
        ACCESS.stream = previous


async def test_all_three_paths_count_under_one_label(fake: FakeHF, access_log: io.StringIO) -> None:
    registry = CollectorRegistry()
    body = {"model": "tei", "query": "q", "documents": ["a", "b"]}
    async with app_client(fake, make_config(MODELS), registry) as client:
        for path in ("/v1/rerank", "/rerank", "/v2/rerank"):
            assert (await client.post(path, json=body)).status_code == 200
        await client.post("/v2/rerank", json={**body, "documents": []})

    def count(status: str) -> float:
        labels = {"model": "tei", "endpoint": "rerank", "status": status}
        return registry.get_sample_value("shim_requests_total", labels) or 0.0

    assert count("200") == 3 and count("400") == 1
    lines = [line for line in access_log.getvalue().splitlines() if "endpoint=rerank" in line]
    assert len(lines) == 4 and all("model=tei" in line for line in lines)
    assert all("prompt_tokens=0" not in line for line in lines[:3])


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank", "/v2/rerank"])
async def test_client_keys_guard_every_path(fake: FakeHF, path: str) -> None:
    config = make_config(MODELS, server='api_keys = ["sk-good"]')
    body = {"model": "tei", "query": "q", "documents": ["a"]}
    async with app_client(fake, config) as client:
        r = await client.post(path, json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        ok = await client.post(path, json=body, headers={"authorization": "Bearer sk-good"})
        assert ok.status_code == 200
    assert len(fake.requests("/tei/rerank")) == 1


async def test_every_path_counts_against_a_keys_rate_limit(fake: FakeHF) -> None:
    server = """
[[server.keys]]
key = "sk-team"
name = "team"
models = ["tei"]
rpm = 3
"""
    team = {"authorization": "Bearer sk-team"}
    body = {"model": "tei", "query": "q", "documents": ["a"]}
    async with app_client(fake, make_config(MODELS, server=server)) as client:
        for path in ("/v1/rerank", "/rerank", "/v2/rerank"):
            assert (await client.post(path, json=body, headers=team)).status_code == 200
        for path in ("/v1/rerank", "/rerank", "/v2/rerank"):
            r = await client.post(path, json=body, headers=team)
            assert r.status_code == 429, path


async def test_fallback_to_another_reranker(fake: FakeHF) -> None:
    models = MODELS.replace("[models.tei-raw]", '[models.tei-raw]\nfallbacks = ["vllm"]', 1)
    fake.script("/tei-raw/rerank", Reply(500, json={"error": "down", "error_type": "Backend"}))
    async with app_client(fake, make_config(models)) as client:
        r = await client.post(
            "/v1/rerank", json={"model": "tei-raw", "query": QUERY, "documents": DOCS[:2]}
        )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "vllm"
    assert_ranked(r.json(), expected("vllm", DOCS[:2]))
