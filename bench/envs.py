"""The benchmark's own virtualenvs under ``bench/`` (git-ignored), made on first use:

- ``.venv-tools``: matplotlib (the plot) and py-spy (``--profile``), so the project's
  environment is left as it is;
- ``.venv-litellm``: ``litellm[proxy]`` for ``--compare litellm``.

Each is created with the running interpreter and reused while it holds the pinned versions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
TOOLS_VENV = BENCH_DIR / ".venv-tools"
LITELLM_VENV = BENCH_DIR / ".venv-litellm"
LITELLM_VERSION = "1.82.6"
TOOLS = ("matplotlib>=3.8", "py-spy>=0.3.14")


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _has(venv: Path, check: str) -> bool:
    python = _python(venv)
    if not python.exists():
        return False
    done = subprocess.run([str(python), "-c", check], capture_output=True, check=False)
    return done.returncode == 0


def _create(venv: Path, packages: list[str], *, what: str) -> bool:
    print(f"bench: installing {what} into {venv.relative_to(BENCH_DIR.parent)} ...", flush=True)
    if not _python(venv).exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False)
        if made.returncode != 0:
            return False
    pip = [str(_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, *packages], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print("\n".join((done.stdout + done.stderr).splitlines()[-15:]), file=sys.stderr)
    return done.returncode == 0


def tools_python() -> Path | None:
    """Python of the tools venv (matplotlib, py-spy), created if needed; None if impossible."""
    if _has(TOOLS_VENV, "import matplotlib") and (TOOLS_VENV / "bin" / "py-spy").exists():
        return _python(TOOLS_VENV)
    if _create(TOOLS_VENV, list(TOOLS), what="matplotlib and py-spy"):
        return _python(TOOLS_VENV)
    print("bench: could not install matplotlib/py-spy: no plot, no profile", file=sys.stderr)
    return None


def py_spy() -> Path | None:
    """The py-spy binary of the tools venv (installed if needed)."""
    path = TOOLS_VENV / "bin" / "py-spy"
    if not path.exists():
        tools_python()
    return path if path.exists() else None


def litellm_bin() -> Path | None:
    """The ``litellm`` proxy command of the LiteLLM venv (pinned version), installed if needed."""
    check = (
        "import importlib.metadata as m, sys; "
        f"sys.exit(0 if m.version('litellm') == {LITELLM_VERSION!r} else 1)"
    )
    binary = LITELLM_VENV / "bin" / "litellm"
    if _has(LITELLM_VENV, check) and binary.exists():
        return binary
    if _create(LITELLM_VENV, [f"litellm[proxy]=={LITELLM_VERSION}"], what="LiteLLM"):
        return binary if binary.exists() else None
    print("bench: could not install LiteLLM; skipping the comparison", file=sys.stderr)
    return None
