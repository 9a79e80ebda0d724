"""The official openai Node SDK (``tests/clients/node``, run with ``node --test``) against shim.

Needs ``node`` (>= 20) and ``npm`` on PATH; skipped with the reason otherwise. The SDK version is
pinned in ``package.json`` / ``package-lock.json``; ``npm ci`` runs once, when ``node_modules``
does not match the lock file.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.clients.node_sdk import NODE_DIR, ensure_node_sdk
from tests.clients.stack import GOOD_KEY, Stack, bounded

NODE_TIMEOUT = 60.0
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def node() -> str:
    return ensure_node_sdk()


@bounded(NODE_TIMEOUT + 10)
async def test_node_sdk(node: str, keyed: Stack) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(NODE_DIR)),
        "NO_COLOR": "1",
        "SHIM_BASE_URL": keyed.api,
        "SHIM_API_KEY": GOOD_KEY,
    }
    process = await asyncio.create_subprocess_exec(
        node,
        "--test",
        cwd=NODE_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        pytest.fail(f"node --test ran over {NODE_TIMEOUT:g}s:\n{output.decode(errors='replace')}")
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"node --test failed (exit {process.returncode}):\n{text}"
    # The runner's summary: every test ran and passed (none skipped or cancelled).
    assert "# fail 0" in text, text
    assert "# cancelled 0" in text, text
    assert "# pass 0" not in text, text
