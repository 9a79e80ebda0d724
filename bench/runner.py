"""Running one scenario against one target, with everything measured around the load:
CPU seconds of the target's process tree and of the fake, peak and current RSS, and (for shim)
the ``shim_overhead_seconds`` histogram scraped from ``/metrics`` before and after.
"""

from __future__ import annotations

import asyncio
import math
import resource
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from bench import load, procs, prom
from bench.scenarios import Scenario
from bench.stats import LoadResult
from bench.wrk import run_wrk

T = TypeVar("T")
HOST = "127.0.0.1"
TargetKind = Literal["direct", "shim", "litellm"]


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run the benchmark's own clients on uvloop when available (it is, with uvicorn)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


@dataclass
class Target:
    """What load is sent to: the fake directly, shim, or LiteLLM."""

    key: str
    label: str
    kind: TargetKind
    fake_ports: dict[str, int]
    port: int = 0
    proc: procs.Proc | None = None
    workers: int = 1
    info: dict[str, Any] = field(default_factory=dict)

    def address(self, scenario: Scenario) -> tuple[int, str, bytes] | None:
        """(port, path, body) of this scenario's request, or None if it has no equivalent."""
        if self.kind == "direct":
            if scenario.direct is None:
                return None
            d = scenario.direct
            return self.fake_ports[d.port], d.path, d.body
        return self.port, scenario.path, scenario.body

    def pids(self) -> list[int]:
        return self.proc.tree() if self.proc is not None else []

    @property
    def metrics_url(self) -> str | None:
        return f"http://{HOST}:{self.port}/metrics" if self.kind == "shim" else None


@dataclass
class Bench:
    """Settings and shared handles of one benchmark run."""

    wrk: str | None
    work_dir: Path
    duration: float
    warmup: float
    fake: procs.Proc
    # Before each scenario, wait up to this long for other processes to calm down.
    quiet_wait: float = 5.0


def _cpu_now(target: Target, bench: Bench) -> dict[str, float]:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "target": procs.cpu_seconds(target.pids()),
        "fake": procs.cpu_seconds([bench.fake.pid]),
        "loadgen": children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime,
        "machine": procs.machine_busy_seconds()[0],
    }


def _rss_mb(pids: list[int], field_name: str) -> float:
    return sum(procs.memory_kb(pid, field_name) for pid in pids) / 1024


def _preflight(target: Target, scenario: Scenario, port: int, path: str, body: bytes) -> str | None:
    """None when one request gets the expected status; else why the scenario is n/a."""
    raw = load.build_request(HOST, port, path, body)
    try:
        sample = run_async(load.request_once(HOST, port, raw))
    except (OSError, TimeoutError) as exc:
        return f"preflight failed: {type(exc).__name__}: {exc}"
    expected = scenario.expect_status
    ok = sample.status == expected or (
        expected >= 400 and target.kind == "litellm" and 400 <= sample.status < 500
    )
    if ok:
        return None
    snippet = sample.body[:160].decode(errors="replace").replace("\n", " ")
    return f"HTTP {sample.status} (expected {expected}): {snippet}"


def run_load(
    bench: Bench,
    scenario: Scenario,
    port: int,
    path: str,
    body: bytes,
    *,
    duration: float | None = None,
) -> LoadResult:
    """The scenario's load (wrk, or the stream client) for its duration; no measurements."""
    duration = duration or scenario.duration or bench.duration
    if scenario.kind == "streams":
        raw = load.build_request(HOST, port, path, body)
        result = run_async(
            load.run_streams(HOST, port, raw, concurrency=scenario.connections, duration=duration)
        )
        as_load = result.as_load()
        as_load.extra["peak_open_streams"] = result.peak_open
        return as_load
    url = f"http://{HOST}:{port}{path}"
    if bench.wrk is None:
        return run_async(
            load.run_aiohttp(url, body, connections=scenario.connections, duration=duration)
        )
    return run_wrk(
        bench.wrk,
        url,
        body,
        connections=scenario.connections,
        duration=duration,
        script_dir=bench.work_dir,
    )


def _warmup(bench: Bench, scenario: Scenario, port: int, path: str, body: bytes) -> None:
    if scenario.kind != "wrk" or bench.warmup <= 0:
        return
    url = f"http://{HOST}:{port}{path}"
    if bench.wrk is None:
        run_async(load.run_aiohttp(url, body, connections=scenario.connections, duration=1))
    else:
        run_wrk(
            bench.wrk,
            url,
            body,
            connections=scenario.connections,
            duration=bench.warmup,
            script_dir=bench.work_dir,
        )


def _fanout(bench: Bench, target: Target, scenario: Scenario) -> LoadResult:
    fast = target.fake_ports["fast"]
    direct = (
        (HOST, fast, [load.build_request(HOST, fast, "/embed", b) for b in scenario.direct_batches])
        if target.kind in ("direct", "shim")
        else None
    )
    through = (
        None
        if target.kind == "direct"
        else (
            HOST,
            target.port,
            load.build_request(HOST, target.port, scenario.path, scenario.body),
        )
    )
    result = run_async(
        load.run_fanout(through, direct, rounds=200, duration=scenario.duration or bench.duration)
    )
    extra: dict[str, Any] = {"rounds": result.rounds}
    if result.slowest_upstream_ms is not None:
        extra["slowest_upstream_ms"] = asdict(result.slowest_upstream_ms)
    if result.added_ms is not None:
        extra["added_ms"] = asdict(result.added_ms)
    return LoadResult(
        requests=result.target_ms.count,
        errors=dict(result.errors),
        duration=result.duration,
        latency_ms=result.target_ms,
        tool="asyncio-fanout",
        extra=extra,
    )


def _overhead(before: str | None, after: str | None, scenario: Scenario) -> dict[str, float] | None:
    if before is None or after is None:
        return None
    labels = {"model": scenario.model, "endpoint": scenario.endpoint}
    diff = prom.histogram(after, "shim_overhead_seconds", **labels) - prom.histogram(
        before, "shim_overhead_seconds", **labels
    )
    if diff.count <= 0:
        return None
    return {
        "count": diff.count,
        "mean_ms": diff.mean * 1000,
        "p50_ms": diff.quantile(0.5) * 1000,
        "p99_ms": diff.quantile(0.99) * 1000,
    }


def _gc_runs(before: str | None, after: str | None) -> dict[str, int] | None:
    """Garbage collections per generation during the run (one-process shim only: the
    multi-process registry has no GC collector)."""
    if before is None or after is None:
        return None
    runs = {}
    for gen in ("0", "1", "2"):
        name = "python_gc_collections"
        diff = prom.counter(after, name, generation=gen) - prom.counter(
            before, name, generation=gen
        )
        runs[f"gen{gen}"] = int(diff)
    return runs if any(runs.values()) else None


def _scrape(target: Target) -> str | None:
    url = target.metrics_url
    if url is None:
        return None
    try:
        return prom.scrape(url)
    except OSError:
        return None


def run_scenario(bench: Bench, target: Target, scenario: Scenario) -> dict[str, Any]:
    """Preflight, warm up, measure; a dict for the JSON report (``status`` ok / n/a / error)."""
    address = target.address(scenario)
    if address is None:
        if scenario.kind != "fanout":
            return {"status": "skipped", "note": "no direct equivalent"}
        # The direct fan-out baseline: check one of its batch calls.
        address = (target.fake_ports["fast"], "/embed", scenario.direct_batches[0])
    port, path, body = address
    reason = _preflight(target, scenario, port, path, body)
    if reason is not None:
        print(f"    n/a: {reason}")
        return {"status": "n/a", "note": reason}
    _warmup(bench, scenario, port, path, body)
    pids = target.pids()
    background = procs.wait_for_quiet(
        [*pids, bench.fake.pid], limit=0.25, max_wait=bench.quiet_wait
    )
    metrics_before = _scrape(target)
    procs.reset_peak_rss(pids)
    cpu_before = _cpu_now(target, bench)
    started = time.perf_counter()
    try:
        if scenario.kind == "fanout":
            runs = [_fanout(bench, target, scenario)]
        else:
            runs = [run_load(bench, scenario, port, path, body) for _ in range(scenario.repeat)]
    except (RuntimeError, OSError, TimeoutError) as exc:
        print(f"    error: {exc}")
        return {"status": "error", "note": f"{type(exc).__name__}: {exc}"}
    wall = time.perf_counter() - started
    # Repeated runs: the one with the median throughput stands for the scenario.
    result = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
    if len(runs) > 1:
        result.extra["rps_runs"] = [round(r.rps, 1) for r in runs]
    cpu_after = _cpu_now(target, bench)
    pids = target.pids()
    peak_rss = _rss_mb(pids, "VmHWM")
    rss = _rss_mb(pids, "VmRSS")
    metrics_after = _scrape(target)
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
    machine = cpu.pop("machine")
    # CPU used by processes that are not part of the benchmark (other work on the machine).
    cpu["other"] = max(0.0, machine - sum(cpu.values()))
    requests = max(sum(r.requests for r in runs), 1)
    out: dict[str, Any] = {
        "status": "ok",
        "load": result.to_dict(),
        "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_per_1000": round(cpu["target"] / requests * 1000, 3) if pids else None,
        "cpu_util": {k: round(v / wall, 3) for k, v in cpu.items()},
        "peak_rss_mb": round(peak_rss, 1) if pids else None,
        "rss_mb": round(rss, 1) if pids else None,
        "background_cores_before": round(background, 2),
    }
    overhead = _overhead(metrics_before, metrics_after, scenario)
    if overhead is not None:
        out["overhead_metric"] = {k: round(v, 4) for k, v in overhead.items()}
    gc_runs = _gc_runs(metrics_before, metrics_after)
    if gc_runs is not None:
        out["gc_runs"] = gc_runs
    if scenario.stream:
        out["tokens_per_second"] = round(result.rps * scenario.tokens, 1)
    if scenario.interleaved and target.kind != "direct":
        out["interleaved"] = _interleaved(target, scenario)
    _print_line(result, out)
    return out


def _interleaved(target: Target, scenario: Scenario) -> dict[str, Any] | None:
    """Sequential overhead against the call this target makes upstream, in alternating rounds."""
    baseline = scenario.direct if target.kind == "shim" else scenario.peer_direct
    if baseline is None:
        return None
    fake_port = target.fake_ports[baseline.port]
    try:
        result = run_async(
            load.run_interleaved(
                (
                    HOST,
                    target.port,
                    load.build_request(HOST, target.port, scenario.path, scenario.body),
                ),
                (
                    HOST,
                    fake_port,
                    load.build_request(HOST, fake_port, baseline.path, baseline.body),
                ),
            )
        )
    except (OSError, TimeoutError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    data = result.to_dict()
    print(
        f"    interleaved: overhead p50 {data['overhead_p50_ms']:.3f} ms, "
        f"p99 {data['overhead_p99_ms']:.3f} ms ({result.rounds} rounds)"
    )
    return data


def _print_line(result: LoadResult, out: dict[str, Any]) -> None:
    lat = result.latency_ms
    p50 = "n/a" if math.isnan(lat.p50) else f"{lat.p50:.2f}"
    p99 = "n/a" if math.isnan(lat.p99) else f"{lat.p99:.2f}"
    extra = ""
    if result.ttft_ms is not None and not math.isnan(result.ttft_ms.p50):
        extra = f", TTFT p50 {result.ttft_ms.p50:.2f} ms"
    print(
        f"    {result.rps:,.0f} req/s, p50 {p50} ms, p99 {p99} ms, "
        f"errors {result.error_count}{extra}, cpu/1k {out['cpu_per_1000']}",
        flush=True,
    )
