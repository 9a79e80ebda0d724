"""One stack (fake upstream + shim on real ports) per test module, reset for every test.

Tests here run in a module-scoped event loop (``pytestmark`` in each module) so the servers
start once per module: most of a client test's time would otherwise be server start and stop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.clients.stack import KEYS, Stack, running_stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def _open_stack() -> AsyncIterator[Stack]:
    async with running_stack() as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def _keyed_stack() -> AsyncIterator[Stack]:
    async with running_stack(KEYS) as stack:
        yield stack


@pytest.fixture
def stack(_open_stack: Stack) -> Stack:
    """shim without client keys, with a fresh fake upstream."""
    return _open_stack.reset()


@pytest.fixture
def keyed(_keyed_stack: Stack) -> Stack:
    """shim with client keys (``stack.KEYS``), with a fresh fake upstream."""
    return _keyed_stack.reset()
