"""``--profile``: sample shim's one process with py-spy while a scenario runs, rank functions.

py-spy writes collapsed stacks (``--format raw``: ``frame;frame;... count``); from them come the
top functions by *self* samples (where the CPU was) and by *inclusive* samples (what it was
doing), and the share of each package (shim, litestar, uvicorn, httpx, aiohttp, ...).
"""

from __future__ import annotations

import functools
import gzip
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import envs
from bench.runner import Bench, Target, run_load
from bench.scenarios import Scenario

#: Parts of shim's request path, each by the frames it is made of (a sample counts when one
#: of its frames contains one of the names: inclusive time, so parts can overlap).
COMPONENTS: dict[str, tuple[str, ...]] = {
    # (Older frame names are kept so that ``--shim-ref`` can profile an earlier shim.)
    "upstream HTTP client (httpx + the aiohttp transport)": (
        "Upstream._attempt (",
        "Client._attempt (",
    ),
    "upstream stream reads (OpenStream chunks)": (
        "OpenStream.iter_bytes (",
        "OpenStream._chunks (",
    ),
    "SSE parsing (shim/upstream/sse.py)": ("iter_sse_data (", "iter_sse_batches ("),
    "client writes (uvicorn RequestResponseCycle.send)": ("RequestResponseCycle.send (",),
    "access log line (shim/accesslog.py write)": ("write (shim/accesslog.py)",),
    "Prometheus metrics (shim/metrics.py)": ("(shim/metrics.py)",),
    "request body read + decode": (
        "read_json (",
        "decode (shim/handlers.py)",
        "decode_request (shim/serve/call.py)",
    ),
    "chat template render": ("render (shim/adapters/_prompt.py)",),
    "TGI parse (response / stream events)": ("TGI.parse_response (", "TGI.parse_event ("),
    "OpenAI response / chunk encode (shim/serve/formats.py)": (
        "(shim/formats.py)",
        "(shim/serve/formats.py)",
    ),
    "stop-sequence scan (StopScanner)": ("StopScanner.",),
    "disconnect watcher (DisconnectWatch._watch)": (
        "watch (shim/handlers.py)",
        "_watch (shim/serve/dispatch.py)",
    ),
}

#: Scenarios profiled by ``--profile``: non-stream chat, burst streams, paced streams, and
#: non-stream Responses with the SQLite store.
PROFILED = ("chat_c32", "stream_c32", "streams_1000", "responses_c32")

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
#: The event loop's frame: frames above it (uvicorn's and shim's startup) are on every stack;
#: its self time is uvloop's C code (polling, socket reads and writes).
LOOP_FRAME = "Runner.run (asyncio/runners.py)"


def record(
    py_spy: Path, pid: int, *, seconds: float, output: Path, during: Callable[[], object]
) -> bool:
    """Sample ``pid`` for ``seconds`` while ``during()`` puts load on it; False on failure."""
    argv = [
        str(py_spy),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(round(seconds)),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        during()
        _, err = spy.communicate(timeout=seconds + 30)
    finally:
        if spy.poll() is None:
            spy.terminate()
            spy.wait(5)
    if spy.returncode != 0 or not output.exists():
        print(f"bench: py-spy failed: {err.decode(errors='replace').strip()[-300:]}")
        return False
    return True


def _frame(raw: str) -> tuple[str, str]:
    match = _FRAME.match(raw.strip())
    if match is None:
        return raw.strip(), ""
    return match.group("func"), match.group("file")


def _package(file: str) -> str:
    parts = file.replace("\\", "/").split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif len(parts) > 1 and parts[-2] in ("asyncio", "logging", "json", "concurrent"):
        return "stdlib:" + parts[-2]
    head = parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")
    return head or "?"


def summarize(raw_file: Path, *, top: int = 15) -> dict[str, Any]:
    """Top functions by self and inclusive samples, and samples per package (self)."""
    self_samples: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = 0
    for line in raw_file.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        # py-spy's first "frame" names the process/thread, not code.
        frames = [f for f in frames if f[1]]
        if not frames:
            continue
        total += count
        names = [f"{fn} ({fl})" for fn, fl in frames]
        if LOOP_FRAME in names:
            names = names[names.index(LOOP_FRAME) :]
        leaf = names[-1]
        if leaf == LOOP_FRAME:
            leaf = "event loop: uvloop C code, syscalls (Runner.run)"
            packages["uvloop (C)"] += count
        else:
            packages[_package(frames[-1][1])] += count
        self_samples[leaf] += count
        for name in set(names[1:]):
            inclusive[name] += count
        for component, parts in COMPONENTS.items():
            if any(part in name for name in names for part in parts):
                components[component] += count

    def ranked(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "samples": n, "percent": round(100 * n / total, 1)}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "self": ranked(self_samples),
        "inclusive": ranked(inclusive),
        "packages": ranked(packages),
        "components": ranked(components),
    }


def profile_target(
    bench: Bench, target: Target, scenarios: list[Scenario], *, out: Path, name: str
) -> dict[str, Any]:
    """Profile each of ``PROFILED`` on ``target`` (one process: shim with one worker); the
    collapsed stacks are kept gzipped next to the results, for flame-graph tools."""
    spy = envs.py_spy()
    if spy is None or target.proc is None:
        return {"error": "py-spy unavailable"}
    summaries: dict[str, Any] = {}
    for scenario in scenarios:
        address = target.address(scenario)
        if scenario.id not in PROFILED or address is None:
            continue
        print(f"  profiling {scenario.id} with py-spy ...", flush=True)
        raw = bench.work_dir / f"profile-{scenario.id}.txt"
        seconds = max(8.0, bench.duration + 2)
        port, path, body = address

        load = functools.partial(run_load, bench, scenario, port, path, body, duration=seconds - 2)
        if record(spy, target.proc.pid, seconds=seconds, output=raw, during=load):
            summary = summarize(raw)
            kept = out / f"{name}-profile-{scenario.id}.txt.gz"
            kept.write_bytes(gzip.compress(raw.read_bytes()))
            summary["collapsed_stacks"] = kept.name
            summaries[scenario.id] = summary
    return summaries
