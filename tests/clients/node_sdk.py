"""The Node.js clients pinned in ``tests/clients/node`` (``package.json``, ``package-lock.json``):
the openai SDK and the Vercel AI SDK, installed once with ``npm ci`` when ``node_modules`` does
not match the lock file; and one runner for their ``node --test`` files."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
#: The openai SDK's package (the browser test serves its ESM build).
SDK_DIR = NODE_DIR / "node_modules" / "openai"
MIN_NODE = 20
NODE_TIMEOUT = 60.0


def locked_versions() -> dict[str, str]:
    """The lock file's version of every direct dependency."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    packages = lock["packages"]
    return {
        name: packages[f"node_modules/{name}"]["version"] for name in packages[""]["dependencies"]
    }


def installed_version(name: str) -> str | None:
    try:
        package = json.loads((NODE_DIR / "node_modules" / name / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version: str | None = package.get("version")
    return version


def ensure_node_sdk() -> str:
    """The ``node`` binary, with the locked packages installed; skips the test when Node.js
    (>= 20) or npm is missing, fails it when ``npm ci`` does."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            f"node and npm are needed for the Node.js clients (install Node.js >= {MIN_NODE})"
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE:
        pytest.skip(f"the Node.js client tests need Node.js >= {MIN_NODE} (found {version})")
    if any(installed_version(n) != v for n, v in locked_versions().items()):
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


async def run_node_tests(node: str, test_file: str, *, base_url: str, api_key: str) -> None:
    """Run one ``node --test`` file against shim at ``base_url``; fail with its output unless
    every test in it ran and passed."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(NODE_DIR)),
        "NO_COLOR": "1",
        "SHIM_BASE_URL": base_url,
        "SHIM_API_KEY": api_key,
    }
    process = await asyncio.create_subprocess_exec(
        node, "--test", test_file, cwd=NODE_DIR, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        pytest.fail(f"node --test ran over {NODE_TIMEOUT:g}s:\n{output.decode(errors='replace')}")
    text = output.decode(errors="replace")
    assert process.returncode == 0, (
        f"node --test {test_file} failed (exit {process.returncode}):\n{text}"
    )
    # The runner's summary: every test ran and passed (none skipped or cancelled).
    assert "# fail 0" in text, text
    assert "# cancelled 0" in text, text
    assert "# skipped 0" in text, text
    assert "# pass 0" not in text, text
