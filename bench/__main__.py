"""``python -m bench``: the whole benchmark in one run.

Starts the fake upstream, measures every scenario directly against it (the baseline), then
through shim with one worker and with ``--workers`` workers, and optionally through LiteLLM;
writes ``bench/results/<date>.json``, ``<date>.md`` and ``<date>.png``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import configs, envs, procs, report, servers, stores
from bench import profile as profiling
from bench.runner import Bench, Target, run_scenario
from bench.scenarios import Scenario, ShimConfig, all_scenarios
from bench.wrk import ensure_wrk

RESULTS = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run (1)")
    parser.add_argument("--workers", type=int, default=2, help="the multi-worker run (2; 1=skip)")
    parser.add_argument("--compare", choices=["litellm"], help="also benchmark LiteLLM's proxy")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of shim (1 worker)")
    parser.add_argument("--scenarios", help="comma-separated scenario ids (default: all)")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams (1000)")
    parser.add_argument("--token-delay-ms", type=float, default=20.0, help="paced stream delay")
    parser.add_argument("--shim-log-level", default="info", help="shim's [server] log_level")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--name", help="results file stem (default: today's date)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=5.0,
        help="seconds to wait for other processes to calm down per run (5)",
    )
    parser.add_argument(
        "--shim-ref", help="benchmark shim as of this git ref (default: the installed copy)"
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return parser


def _select(ids: str | None, scenarios: list[Scenario]) -> list[Scenario]:
    if not ids:
        return scenarios
    wanted = [s.strip() for s in ids.split(",") if s.strip()]
    known = {s.id for s in scenarios}
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [s for s in scenarios if s.id in wanted]


def _machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _run_target(
    bench: Bench,
    target: Target,
    scenarios: list[Scenario],
    results: dict[str, Any],
    *,
    variant: ShimConfig = "default",
) -> dict[str, Any]:
    """Every scenario on ``target``; its readings (memory...) go to ``results["targets"]``,
    under ``variants`` for a second process with another config (same key: same shim)."""
    print(f"== {target.label}" + ("" if variant == "default" else f", {variant} config"))
    pids = target.pids()
    if pids:
        target.info["idle_rss_mb"] = round(sum(procs.memory_kb(p) for p in pids) / 1024, 1)
        target.info["processes"] = len(pids)
    for scenario in scenarios:
        print(f"  {scenario.id}: {scenario.title}", flush=True)
        outcome = run_scenario(bench, target, scenario)
        results["scenarios"].setdefault(scenario.id, {})[target.key] = outcome
    if pids:
        time.sleep(1.0)
        pids = target.pids()
        target.info["rss_after_load_mb"] = round(sum(procs.memory_kb(p) for p in pids) / 1024, 1)
    entry = results["targets"].setdefault(
        target.key, {"label": target.label, "kind": target.kind, "workers": target.workers}
    )
    if variant == "default":
        entry.update(target.info)
    else:
        entry.setdefault("variants", {})[variant] = target.info
    return target.info


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scenarios = _select(args.scenarios, all_scenarios(stream_concurrency=args.streams))
    name = args.name or time.strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench" + ("" if argv is None else " " + " ".join(argv))
    if argv is None:
        command = "python -m bench " + " ".join(sys.argv[1:])
    results: dict[str, Any] = {
        "name": name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command.strip(),
        "machine": _machine(),
        "shim_git": servers.installed_shim_sha(),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "streams": args.streams,
            "token_delay_ms": args.token_delay_ms,
            "shim_log_level": args.shim_log_level,
        },
        "scenarios": {},
        "scenario_info": {
            s.id: {
                "title": s.title,
                "connections": s.connections,
                "kind": s.kind,
                "repeat": s.repeat,
                "note": s.note,
            }
            for s in scenarios
        },
        "targets": {},
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shim-bench-") as tmp:
        work = Path(tmp)
        try:
            _run(args, scenarios, results, work, name)
        finally:
            procs.stop_all()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    paths = report.write(results, args.out, name, plot=not args.no_plot)
    print("\n" + report.markdown(results))
    for path in paths:
        print(f"wrote {path}")
    return 0


def _run(
    args: argparse.Namespace,
    scenarios: list[Scenario],
    results: dict[str, Any],
    work: Path,
    name: str,
) -> None:
    wrk = ensure_wrk()
    results["load_generator"] = _wrk_version(wrk) if wrk else "aiohttp (wrk unavailable)"
    litellm = envs.litellm_bin() if args.compare == "litellm" else None
    if args.compare == "litellm" and litellm is None:
        results["litellm_error"] = "LiteLLM could not be installed"
    source = None
    if args.shim_ref:
        source, results["shim_git"] = servers.extract_shim(args.shim_ref, work)
    fake, ports = servers.start_fake(work, token_delay_ms=args.token_delay_ms)
    bench = Bench(
        wrk=wrk,
        work_dir=work,
        duration=args.duration,
        warmup=args.warmup,
        fake=fake,
        quiet_wait=args.quiet_wait,
    )
    direct = Target(key="direct", label="direct (fake upstream)", kind="direct", fake_ports=ports)
    _run_target(bench, direct, scenarios, results)
    support = servers.config_support(
        configs.optional_parts(ports["fast"], ports["paced"], work), source
    )
    results["config_support"] = support
    for part, why in support.items():
        if why is not None:
            print(f"bench: shim's config without {configs.PARTS[part]}, which it refuses: {why}")
    default = [s for s in scenarios if s.config == "default"]
    on_redis = [s for s in scenarios if s.config == "redis"]
    shim_keys = [f"shim-{count}w" for count in _worker_counts(args)]
    redis = stores.open_redis(work, on_redis, support, results, shim_keys=shim_keys)
    try:
        for workers in _worker_counts(args):
            if default:
                _shim_run(args, bench, ports, source, results, work, workers, default, name)
            if redis is not None:
                _redis_run(args, bench, ports, source, results, work, workers, on_redis, redis)
    finally:
        if redis is not None:
            redis.stop()
    if litellm is not None:
        config = configs.write(
            work, "litellm.yaml", configs.litellm_yaml(ports["fast"], ports["paced"])
        )
        try:
            target = servers.start_litellm(work, litellm, config, ports)
        except RuntimeError as exc:
            results["litellm_error"] = str(exc)[-500:]
        else:
            try:
                # The Redis scenarios are about shim's store: not run on LiteLLM.
                _run_target(bench, target, default, results)
            finally:
                if target.proc is not None:
                    target.proc.stop()
            results["litellm_version"] = envs.LITELLM_VERSION
    results["fake"] = {
        "ports": ports,
        "cpu_seconds": round(procs.cpu_seconds([fake.pid]), 2),
        "peak_rss_mb": round(procs.memory_kb(fake.pid, "VmHWM") / 1024, 1),
    }


def _worker_counts(args: argparse.Namespace) -> list[int]:
    return sorted({1, max(1, args.workers)})


def _shim_toml(
    args: argparse.Namespace, ports: dict[str, int], support: dict[str, str | None], state: str
) -> str:
    """shim's config with the optional parts the shim under test accepts."""
    return configs.shim_toml(
        ports["fast"],
        ports["paced"],
        log_level=args.shim_log_level,
        state=state if support.get("state") is None else "",
        rerank=support.get("rerank") is None,
    )


def _shim_run(
    args: argparse.Namespace,
    bench: Bench,
    ports: dict[str, int],
    source: Path | None,
    results: dict[str, Any],
    work: Path,
    workers: int,
    scenarios: list[Scenario],
    name: str,
) -> None:
    """shim with ``workers`` workers and its default config: the responses in a SQLite file
    of its own (a fresh one per process, so every run starts from an empty store)."""
    db = work / f"state-{workers}w.db"
    text = _shim_toml(args, ports, results["config_support"], configs.sqlite_state(db))
    config = configs.write(work, f"shim-{workers}w.toml", text)
    shim = servers.start_shim(work, config, ports, workers=workers, source=source)
    try:
        _run_target(bench, shim, scenarios, results)
        results["targets"][shim.key]["state_db_mb"] = stores.sqlite_mb(db)
        if args.profile and workers == 1:
            results["profile"] = profiling.profile_target(
                bench, shim, scenarios, out=args.out, name=name
            )
    finally:
        if shim.proc is not None:
            shim.proc.stop()


def _redis_run(
    args: argparse.Namespace,
    bench: Bench,
    ports: dict[str, int],
    source: Path | None,
    results: dict[str, Any],
    work: Path,
    workers: int,
    scenarios: list[Scenario],
    redis: stores.Redis,
) -> None:
    """A second shim process, its store on the benchmark's redis-server (emptied first)."""
    redis.flush()
    text = _shim_toml(args, ports, results["config_support"], configs.redis_state(redis.url))
    config = configs.write(work, f"shim-{workers}w-redis.toml", text)
    try:
        shim = servers.start_shim(
            work, config, ports, workers=workers, source=source, variant="redis"
        )
    except RuntimeError as exc:
        # The SQLite runs stand; the Redis scenarios say why they have no figures.
        print(f"bench: shim with the Redis store did not start: {exc}")
        for scenario in scenarios:
            outcome = {"status": "error", "note": f"shim did not start: {str(exc)[-300:]}"}
            results["scenarios"].setdefault(scenario.id, {})[f"shim-{workers}w"] = outcome
        return
    try:
        info = _run_target(bench, shim, scenarios, results, variant="redis")
        info["redis_keys"] = redis.keys()
    finally:
        if shim.proc is not None:
            shim.proc.stop()


def _wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


if __name__ == "__main__":
    sys.exit(main())
