"""The official openai Node SDK (``tests/clients/node``, run with ``node --test``) against shim.

Needs ``node`` (>= 20) and ``npm`` on PATH; skipped with the reason otherwise. The SDK version is
pinned in ``package.json`` / ``package-lock.json``; ``npm ci`` runs once, when ``node_modules``
does not match the lock file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clients.stack import GOOD_KEY, Stack, bounded

NODE_DIR = Path(__file__).parent / "node"
NODE_TIMEOUT = 60.0
pytestmark = pytest.mark.asyncio(loop_scope="module")


def _locked_version() -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    version: str = lock["packages"]["node_modules/openai"]["version"]
    return version


def _installed_version() -> str | None:
    try:
        package = json.loads((NODE_DIR / "node_modules/openai/package.json").read_text())
    except (OSError, ValueError):
        return None
    version: str | None = package.get("version")
    return version


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` binary, with the locked openai SDK installed next to the tests."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the Node SDK tests (install Node.js >= 20)")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"the Node SDK tests need Node.js >= 20 (found {version})")
    if _installed_version() != _locked_version():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci failed in {NODE_DIR}:\n{done.stdout}\n{done.stderr}")
    return node


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
    assert "# pass 0" not in text, text
