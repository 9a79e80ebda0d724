"""Embedding adapters: inputs, payloads, every upstream shape, pooling, base64, dimensions."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import pytest

from shim.adapters import _vectors
from shim.adapters import feature_extraction as fx
from shim.errors import InvalidRequestError, UpstreamError

V1, V2 = [3.0, 4.0], [0.0, 2.0]


def unit(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def adapter(
    protocol: Any, *, pooling: Any = "mean", normalize: bool = True, truncate: Any = None
) -> Any:
    return fx.for_protocol(
        protocol, truncate=truncate, normalize=normalize, pooling=pooling, upstream_model="m"
    )


@pytest.mark.parametrize(
    ("value", "batch", "single"),
    [
        ("a", ["a"], True),
        (["a", "b"], ["a", "b"], False),
        ([1, 2, 3], [[1, 2, 3]], True),
        ([[1, 2], [3]], [[1, 2], [3]], False),
    ],
    ids=["string", "strings", "ids", "id-lists"],
)
def test_inputs_of(value: Any, batch: Any, single: bool) -> None:
    assert fx.inputs_of(value) == (batch, single)


@pytest.mark.parametrize(
    "value",
    ["", [], ["a", ""], ["a", 1], [[]]],
    ids=["empty-str", "empty-list", "empty-item", "mixed", "empty-ids"],
)
def test_inputs_rejected(value: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        fx.inputs_of(value)
    assert info.value.param is not None and info.value.param.startswith("input")


def test_payloads_per_protocol() -> None:
    tei = json.loads(adapter("tei", truncate=True).to_payload(["a"], encoding_format="float"))
    assert tei == {"inputs": ["a"], "truncate": True, "normalize": True}
    pipe = json.loads(adapter("pipeline").to_payload(["a"], encoding_format="float"))
    assert pipe == {"inputs": ["a"]}
    # The inference toolkit reads only `parameters` (as pipeline keywords); hf-inference `truncate`.
    pipe = json.loads(adapter("pipeline", truncate=True).to_payload(["a"], encoding_format="float"))
    assert pipe == {"inputs": ["a"], "truncate": True, "parameters": {"truncation": True}}
    oai = json.loads(adapter("openai").to_payload([[1, 2]], encoding_format="float"))
    assert oai == {"input": [[1, 2]], "model": "m", "encoding_format": "float"}
    with pytest.raises(InvalidRequestError):
        adapter("pipeline").to_payload([[1, 2]], encoding_format="float")


SHAPES = [
    pytest.param("pipeline", [3.0, 4.0], 1, "mean", [unit(V1)], id="flat-dim"),
    pytest.param("pipeline", [V1, V2], 2, "mean", [unit(V1), unit(V2)], id="n-dim"),
    pytest.param("tei", [V1, V2], 2, "mean", [V1, V2], id="tei-as-is"),
    pytest.param("pipeline", [[V1, V2]], 1, "mean", [unit([1.5, 3.0])], id="1-tokens-dim-mean"),
    pytest.param("pipeline", [V1, V2], 1, "mean", [unit([1.5, 3.0])], id="tokens-dim-single"),
    pytest.param("pipeline", [[V1, V2]], 1, "cls", [unit(V1)], id="cls-pooling"),
    pytest.param(
        "pipeline",
        [[[V1, V2]], [[V2]]],
        2,
        "mean",
        [unit([1.5, 3.0]), unit(V2)],
        id="n-1-tokens-dim-ragged",
    ),
    pytest.param(
        "pipeline", {"embeddings": [V1, V2]}, 2, "mean", [unit(V1), unit(V2)], id="embeddings-dict"
    ),
]


@pytest.mark.parametrize(("protocol", "body", "n", "pooling", "expected"), SHAPES)
def test_shapes(
    protocol: Any, body: Any, n: int, pooling: Any, expected: list[list[float]]
) -> None:
    result = adapter(protocol, pooling=pooling).parse_response(json.dumps(body).encode(), n=n)
    got = result.vectors
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a == pytest.approx(b)


def test_mean_pools_every_token_not_the_first() -> None:
    tokens = [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    (vector,) = (
        adapter("pipeline", normalize=False).parse_response(json.dumps([tokens]).encode(), n=1)
    ).vectors
    assert vector == pytest.approx([1 / 3, 2 / 3])


def test_openai_shape_sorted_by_index_with_usage() -> None:
    body = {
        "data": [{"index": 1, "embedding": V2}, {"index": 0, "embedding": V1}],
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    result = adapter("openai").parse_response(json.dumps(body).encode(), n=2)
    assert result.vectors == [V1, V2]
    assert result.prompt_tokens == 8


@pytest.mark.parametrize(
    ("body", "n"),
    [(b"nope", 1), (b'{"x": 1}', 1), (b'[["a"]]', 1), (b"[[1.0],[2.0]]", 3), (b"[]", 1)],
    ids=["garbage", "dict-without-embeddings", "strings", "count-mismatch", "empty"],
)
def test_bad_shapes_are_invalid_responses(body: bytes, n: int) -> None:
    with pytest.raises(UpstreamError) as info:
        adapter("pipeline").parse_response(body, n=n)
    assert info.value.reason == "invalid_response"


def test_pooling_none_rejects_token_level_output() -> None:
    with pytest.raises(UpstreamError, match="token-level"):
        adapter("pipeline", pooling="none").parse_response(json.dumps([[V1, V2]]).encode(), n=1)


def test_base64_is_little_endian_float32() -> None:
    encoded = _vectors.to_base64([1.0, -2.5, 0.1])
    assert struct.unpack("<3f", base64.b64decode(encoded)) == pytest.approx((1.0, -2.5, 0.1))


def test_dimensions_truncate_and_renormalise() -> None:
    (short,) = _vectors.shorten([[3.0, 4.0, 12.0]], 2)
    assert short == pytest.approx([0.6, 0.8])
    with pytest.raises(InvalidRequestError):
        _vectors.shorten([[1.0, 2.0]], 5)


def test_token_estimate() -> None:
    assert fx.estimate_batch_tokens([[1, 2, 3]]) == 3
    assert fx.estimate_batch_tokens(["abcd"]) == 3


@pytest.mark.parametrize(
    ("protocol", "body", "ok"),
    [
        ("tei", b"[[1.0, 2.0], [3.0]]", True),
        ("tei", b'[["a"], [1.0]]', False),
        ("tei", b"[[[1.0]], [2.0]]", False),
        ("tei", b"[[1.0]]", False),  # count mismatch (2 inputs)
        (
            "openai",
            b'{"data": [{"index": 1, "embedding": "AAAA"}, {"index": 0, "embedding": [1]}]}',
            True,
        ),
        (
            "openai",
            b'{"data": [{"index": 0, "embedding": {"x": 1}}, {"index": 1, "embedding": [1]}]}',
            False,
        ),
    ],
)
def test_parse_verbatim(protocol: Any, body: bytes, ok: bool) -> None:
    if ok:
        items, _ = adapter(protocol).parse_verbatim(body, n=2)
        assert len(items) == 2
        if protocol == "openai":
            assert bytes(items[0]) == b"[1]"  # sorted by index
    else:
        with pytest.raises(UpstreamError):
            adapter(protocol).parse_verbatim(body, n=2)


def test_conform_converts_between_encodings() -> None:
    import msgspec

    floats = msgspec.Raw(b"[0.5,-0.25]")
    assert _vectors.conform(floats, "float") is floats
    encoded = _vectors.conform(floats, "base64")
    assert isinstance(encoded, str)
    assert _vectors.conform(msgspec.Raw(msgspec.json.encode(encoded)), "float") == [0.5, -0.25]
