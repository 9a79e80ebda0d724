"""The official openai Node SDK (``tests/clients/node/sdk.test.mjs``, run with ``node --test``)
against shim.

Needs ``node`` (>= 20) and ``npm`` on PATH; skipped with the reason otherwise. The SDK version is
pinned in ``package.json`` / ``package-lock.json``; ``npm ci`` runs once, when ``node_modules``
does not match the lock file.
"""

from __future__ import annotations

import pytest

from tests.clients.node_sdk import NODE_TIMEOUT, ensure_node_sdk, run_node_tests
from tests.clients.stack import GOOD_KEY, Stack, bounded

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def node() -> str:
    return ensure_node_sdk()


@bounded(NODE_TIMEOUT + 10)
async def test_node_sdk(node: str, keyed: Stack) -> None:
    await run_node_tests(node, "sdk.test.mjs", base_url=keyed.api, api_key=GOOD_KEY)
