"""The openai Node SDK pinned in ``tests/clients/node`` (``package.json``, ``package-lock.json``),
installed once with ``npm ci`` when ``node_modules`` does not match the lock file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
SDK_DIR = NODE_DIR / "node_modules" / "openai"
MIN_NODE = 20


def locked_version() -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    version: str = lock["packages"]["node_modules/openai"]["version"]
    return version


def installed_version() -> str | None:
    try:
        package = json.loads((SDK_DIR / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version: str | None = package.get("version")
    return version


def ensure_node_sdk() -> str:
    """The ``node`` binary, with the locked SDK installed; skips the test when Node.js (>= 20)
    or npm is missing, fails it when ``npm ci`` does."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            f"node and npm are needed for the openai Node SDK (install Node.js >= {MIN_NODE})"
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE:
        pytest.skip(f"the openai Node SDK tests need Node.js >= {MIN_NODE} (found {version})")
    if installed_version() != locked_version():
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
