"""The text-ranking adapter: payloads per protocol, every answer shape → scores in document
order, ranking and the request checks (tables)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from shim.adapters import text_ranking as tr
from shim.errors import InvalidRequestError, UpstreamError
from shim.openai import rerank


def test_every_rerank_field_is_accounted_for() -> None:
    fields = set(rerank.RerankRequest.__struct_fields__)
    assert not tr.MAPPED & set(tr.IGNORED)
    assert fields == tr.MAPPED | set(tr.IGNORED)
    assert all(reason for reason in tr.IGNORED.values())


@pytest.mark.parametrize(
    ("protocol", "options", "expected"),
    [
        (
            "tei",
            {"truncate": None, "raw_scores": False},
            {"query": "q", "texts": ["a", "b"], "raw_scores": False, "return_text": False},
        ),
        (
            "tei",
            {"truncate": True, "raw_scores": True},
            {"query": "q", "texts": ["a", "b"], "raw_scores": True, "return_text": False,
             "truncate": True},
        ),
        (
            "pipeline",
            {"truncate": True, "raw_scores": True},
            {"inputs": [["q", "a"], ["q", "b"]]},
        ),
        (
            "openai",
            {"truncate": True, "raw_scores": False},
            {"model": "served", "query": "q", "documents": ["a", "b"], "return_documents": False},
        ),
    ],
    ids=["tei", "tei-truncate-raw", "pipeline-pairs", "openai"],
)  # fmt: skip
def test_payloads(protocol: Any, options: dict[str, Any], expected: dict[str, Any]) -> None:
    adapter = tr.for_protocol(protocol, upstream_model="served", **options)
    body = adapter.to_payload(query="q", texts=["a", "b"])
    assert json.loads(body) == expected


def _adapter(protocol: Any) -> Any:
    return tr.for_protocol(protocol, truncate=None, raw_scores=False, upstream_model="m")


@pytest.mark.parametrize(
    ("protocol", "answer", "n", "scores", "tokens"),
    [
        ("tei", [{"index": 2, "score": 0.9}, {"index": 0, "score": 0.5}, {"index": 1, "score": 0.1}], 3, [0.5, 0.1, 0.9], None),
        ("tei", [{"index": 0, "score": 0.7, "text": "echoed"}], 1, [0.7], None),
        ("pipeline", {"scores": [3.5, -2.0]}, 2, [3.5, -2.0], None),
        ("pipeline", {"scores": 1}, 1, [1.0], None),
        ("pipeline", [{"index": 1, "score": 2.0}, {"index": 0, "score": -1.0}], 2, [-1.0, 2.0], None),
        ("openai", {"id": "x", "results": [{"index": 1, "relevance_score": 0.8, "document": {"text": "b"}}, {"index": 0, "relevance_score": 0.2}], "usage": {"total_tokens": 17}}, 2, [0.2, 0.8], 17),
        ("openai", {"results": [{"index": 0, "relevance_score": 0.3}]}, 1, [0.3], None),
    ],
    ids=["tei-out-of-order", "tei-with-text", "pipeline-pairs", "pipeline-one-int",
         "pipeline-ranks", "openai-vllm", "openai-no-usage"],
)  # fmt: skip
def test_answers_become_scores_in_document_order(
    protocol: Any, answer: Any, n: int, scores: list[float], tokens: int | None
) -> None:
    result = _adapter(protocol).parse_response(json.dumps(answer).encode(), n=n)
    assert result.scores == scores
    assert result.prompt_tokens == tokens


@pytest.mark.parametrize(
    ("protocol", "body", "n"),
    [
        ("tei", b'[{"index": 0, "score": 0.5}]', 2),
        ("tei", b'[{"index": 0, "score": 0.5}, {"index": 0, "score": 0.4}]', 2),
        ("tei", b'[{"index": 5, "score": 0.5}]', 1),
        ("tei", b'[{"index": -1, "score": 0.5}]', 1),
        ("tei", b'{"error": "nope"}', 1),
        ("tei", b"not json", 1),
        ("pipeline", b'{"scores": [1.0]}', 2),
        ("pipeline", b'[{"generated_text": "hi"}]', 1),
        ("openai", b'{"results": [{"index": 0, "relevance_score": 0.1}]}', 2),
        ("openai", b'{"data": []}', 1),
    ],
    ids=["tei-too-few", "tei-duplicate", "tei-out-of-range", "tei-negative", "tei-object",
         "garbage", "pipeline-count", "pipeline-generation", "openai-top-n-cut", "openai-shape"],
)  # fmt: skip
def test_bad_answers_are_invalid_responses(protocol: Any, body: bytes, n: int) -> None:
    with pytest.raises(UpstreamError) as error:
        _adapter(protocol).parse_response(body, n=n)
    assert error.value.code == "upstream_invalid_response"


@pytest.mark.parametrize(
    ("scores", "top_n", "expected"),
    [
        ([0.1, 0.9, 0.5], None, [(1, 0.9), (2, 0.5), (0, 0.1)]),
        ([0.1, 0.9, 0.5], 2, [(1, 0.9), (2, 0.5)]),
        ([0.1, 0.9, 0.5], 10, [(1, 0.9), (2, 0.5), (0, 0.1)]),
        ([0.5, 0.5, 0.7, 0.5], None, [(2, 0.7), (0, 0.5), (1, 0.5), (3, 0.5)]),
        ([-3.0, 2.0], 1, [(1, 2.0)]),
    ],
    ids=["all", "top-n", "top-n-over", "ties-in-document-order", "logits"],
)
def test_ranked(scores: list[float], top_n: int | None, expected: list[tuple[int, float]]) -> None:
    assert tr.ranked(scores, top_n) == expected


def _request(**fields: Any) -> rerank.RerankRequest:
    return msgspec.convert(
        {"model": "m", "query": "q", "documents": ["a"], **fields}, rerank.RerankRequest
    )


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"documents": []}, "documents"),
        ({"query": ""}, "query"),
        ({"query": "  \n"}, "query"),
        ({"top_n": 0}, "top_n"),
        ({"top_n": -2}, "top_n"),
    ],
    ids=["no-documents", "empty-query", "blank-query", "top-n-zero", "top-n-negative"],
)
def test_request_checks_name_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as error:
        tr.texts_of(_request(**fields))
    assert error.value.param == param


def test_documents_as_strings_or_objects_with_text() -> None:
    req = _request(documents=["plain", {"text": "object", "title": "ignored"}])
    assert tr.texts_of(req) == ["plain", "object"]


def test_estimate_counts_the_query_once_per_document() -> None:
    assert tr.estimate_tokens("abcd", ["abcd", "abcdefgh"]) == (1 + 1 + 3) + (1 + 2 + 3)
