"""A/B experiments behind the suggestions in ``bench/profile.md``: ``python -m bench.experiments``.

Without editing shim, it measures what three changes would bring:

- **shim variants** (non-stream chat, c=32, wrk, rounds interleaved across variants): shim as
  it is; with ``gc.freeze()`` after the app is built (startup objects leave the collector's
  scans); with the access log written as one f-string per request, flushed every 10 ms instead
  of a ``logging`` record and a write per request; and both. Each variant is shim started
  through this module (``python -m bench.experiments shim VARIANTS serve ...``), which patches
  ``shim.app.create_app`` / ``shim.accesslog.write`` before running shim's own CLI.
- **upstream client** (in-process, against the fake): CPU per request of shim's upstream path
  (``httpx.Request`` through shim's transport) versus aiohttp's own API.
- **embeddings pass-through** (in-process): decoding TEI's float vectors and encoding them again
  versus passing each vector's JSON through untouched (``msgspec.Raw``).

Results go to ``bench/results/<date>-experiments.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import configs, procs, servers
from bench.runner import HOST, run_async
from bench.scenarios import all_scenarios
from bench.stats import LoadResult
from bench.wrk import ensure_wrk, run_wrk

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("baseline", "gc-freeze", "fast-log", "gc-freeze,fast-log")
# The fields of shim's access line, in its order.
_LOG_FIELDS = (
    "request_id",
    "method",
    "path",
    "endpoint",
    "model",
    "status",
    "duration_ms",
    "upstream_ms",
    "overhead_ms",
    "prompt_tokens",
    "completion_tokens",
    "stream",
)


# --- the patched shim (runs in the shim process) ----------------------------------------------


def _patch_gc_freeze() -> None:
    import shim.app

    build = shim.app.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = build(*args, **kwargs)
        gc.collect()
        gc.freeze()
        return app

    shim.app.create_app = create_app


def _patch_fast_log() -> None:
    import shim.accesslog

    pending: list[str] = []
    access = logging.getLogger("shim.access")

    def flush() -> None:
        sys.stderr.write("".join(pending))
        sys.stderr.flush()
        pending.clear()

    def write(ctx: Any, scope: Any, now: float) -> None:
        if not access.isEnabledFor(logging.INFO):
            return
        pending.append(
            f"request_id={ctx.request_id} method={scope['method']} path={scope['path']} "
            f"endpoint={ctx.api} model={ctx.model} status={ctx.status} "
            f"duration_ms={(now - ctx.start) * 1000:.3f} "
            f"upstream_ms={ctx.upstream_seconds * 1000:.3f} "
            f"overhead_ms={ctx.overhead(now) * 1000:.3f} prompt_tokens={ctx.prompt_tokens} "
            f"completion_tokens={ctx.completion_tokens} stream={ctx.stream}\n"
        )
        if len(pending) == 1:
            asyncio.get_running_loop().call_later(0.01, flush)

    shim.accesslog.write = write
    writer = getattr(shim.accesslog, "ACCESS", None)
    if writer is not None:  # shim's own buffered writer, where it has one
        writer.write = write


def run_patched_shim(variant: str, argv: list[str]) -> int:
    """``python -m bench.experiments shim VARIANT serve ...``: shim's CLI with ``variant``."""
    source = os.environ.get(servers.SOURCE_ENV)
    if source:
        sys.path.insert(0, source)
    parts = set(variant.split(","))
    if "gc-freeze" in parts:
        _patch_gc_freeze()
    if "fast-log" in parts:
        _patch_fast_log()
    from shim.__main__ import main

    return main(argv)


# --- experiment 1: shim variants ---------------------------------------------------------------


def shim_variants(
    work: Path, ports: dict[str, int], *, rounds: int, seconds: float, source: Path | None
) -> list[dict[str, Any]]:
    wrk = ensure_wrk()
    if wrk is None:
        return [{"error": "wrk unavailable"}]
    config = configs.write(work, "shim.toml", configs.shim_toml(ports["fast"], ports["paced"]))
    scenario = next(s for s in all_scenarios() if s.id == "chat_c32")
    started: dict[str, tuple[procs.Proc, int]] = {}
    for variant in VARIANTS:
        port = procs.free_port()
        argv = [
            sys.executable,
            "-m",
            "bench.experiments",
            "shim",
            variant,
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ]
        proc = procs.start(
            f"shim {variant}", argv, log=work / f"shim-{variant}.log", env=servers.shim_env(source)
        )
        procs.wait_http(f"http://{HOST}:{port}/health", proc, timeout=60)
        started[variant] = (proc, port)
    runs: dict[str, list[LoadResult]] = {v: [] for v in VARIANTS}
    try:
        for _proc, port in started.values():  # warm-up
            run_wrk(
                wrk,
                f"http://{HOST}:{port}{scenario.path}",
                scenario.body,
                connections=32,
                duration=1,
                script_dir=work,
            )
        for i in range(rounds):
            order = VARIANTS if i % 2 == 0 else tuple(reversed(VARIANTS))
            for variant in order:
                port = started[variant][1]
                result = run_wrk(
                    wrk,
                    f"http://{HOST}:{port}{scenario.path}",
                    scenario.body,
                    connections=32,
                    duration=seconds,
                    script_dir=work,
                )
                runs[variant].append(result)
                print(
                    f"  {variant:20s} {result.rps:7,.0f} req/s  p99 {result.latency_ms.p99:6.1f} ms"
                )
    finally:
        for proc, _ in started.values():
            proc.stop()
    rows = []
    for variant, results in runs.items():
        rps = sorted(r.rps for r in results)
        p99 = sorted(r.latency_ms.p99 for r in results)
        rows.append(
            {
                "variant": variant,
                "rps_median": round(rps[len(rps) // 2], 1),
                "rps_runs": [round(x) for x in rps],
                "p50_ms_median": round(sorted(r.latency_ms.p50 for r in results)[len(rps) // 2], 2),
                "p99_ms_median": round(p99[len(p99) // 2], 2),
                "errors": sum(r.error_count for r in results),
            }
        )
    return rows


# --- experiment 2: the upstream client ----------------------------------------------------------


async def _cpu_per_request(
    send: Callable[[], Awaitable[None]], *, count: int, concurrency: int
) -> dict[str, float]:
    for _ in range(100):
        await send()
    per_worker = count // concurrency
    wall, cpu = time.perf_counter(), time.process_time()

    async def worker() -> None:
        for _ in range(per_worker):
            await send()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = per_worker * concurrency
    return {"cpu_us_per_request": round(1e6 * cpu / done, 1), "requests_per_s": round(done / wall)}


async def _clients(port: int, *, count: int, rounds: int) -> dict[str, Any]:
    import aiohttp
    import httpx

    from shim.upstream.client import POOL_LIMITS, default_transport

    url = f"http://{HOST}:{port}/generate"
    direct = next(s for s in all_scenarios() if s.id == "chat_c32").direct
    assert direct is not None
    body = direct.body
    headers = {"content-type": "application/json", "accept": "application/json"}
    transport = default_transport()

    parsed = httpx.URL(url)
    raw_headers = [
        (b"host", f"{HOST}:{port}".encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers.items()),
    ]

    async def via_transport() -> None:
        # What shim's Upstream._attempt does for a non-stream call (ready-made headers, the
        # body as a ByteStream, straight to the transport).
        request = httpx.Request("POST", parsed, headers=raw_headers, stream=httpx.ByteStream(body))
        request.read()
        response = await transport.handle_async_request(request)
        await response.aread()
        await response.aclose()

    connector = aiohttp.TCPConnector(limit=POOL_LIMITS.max_connections or 0, limit_per_host=0)
    results: dict[str, list[dict[str, float]]] = {
        "httpx + shim transport": [],
        "aiohttp": [],
    }
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def via_aiohttp() -> None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

        for _ in range(rounds):
            results["httpx + shim transport"].append(
                await _cpu_per_request(via_transport, count=count, concurrency=32)
            )
            results["aiohttp"].append(
                await _cpu_per_request(via_aiohttp, count=count, concurrency=32)
            )
    await transport.aclose()
    return {
        name: {
            "cpu_us_per_request_median": sorted(r["cpu_us_per_request"] for r in runs)[
                len(runs) // 2
            ],
            "runs": runs,
        }
        for name, runs in results.items()
    }


# --- experiment 3: embeddings pass-through -------------------------------------------------------


def embeddings_passthrough(*, batches: int = 8, size: int = 32, repeat: int = 20) -> dict[str, Any]:
    import msgspec

    from bench.fake_upstream import Answers, Settings

    payload = Answers(Settings())._build_embed(size).split(b"\r\n\r\n", 1)[1]
    floats = msgspec.json.Decoder(list[list[float]])
    raws = msgspec.json.Decoder(list[msgspec.Raw])
    encoder = msgspec.json.Encoder()

    def round_trip() -> None:
        vectors = [v for _ in range(batches) for v in floats.decode(payload)]
        encoder.encode(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vectors)
                ],
            }
        )

    def passthrough() -> None:
        vectors = [v for _ in range(batches) for v in raws.decode(payload)]
        encoder.encode(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vectors)
                ],
            }
        )

    timings: dict[str, float] = {}
    for name, fn in (
        ("decode floats + encode floats", round_trip),
        ("msgspec.Raw pass-through", passthrough),
    ):
        fn()
        started = time.process_time()
        for _ in range(repeat):
            fn()
        timings[name] = round((time.process_time() - started) / repeat * 1000, 2)
    return {"inputs": batches * size, "cpu_ms_per_request": timings}


# --- report ---------------------------------------------------------------------------------------


def markdown(data: dict[str, Any]) -> str:
    lines = [
        f"# shim experiments, {data['name']}",
        "",
        f"`{data['command'].strip()}` on shim `{data.get('shim_git')}`; background: "
        f"{data['background_cores']:.2f} cores used by other processes at the start.",
        "",
        "## shim variants: chat, non-stream, c=32, 1 worker (medians of interleaved runs)",
        "",
        "| variant | RPS | runs | p50 ms | p99 ms | errors |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in data["variants"]:
        if "error" in row:
            lines.append(f"| {row['error']} ||||||")
            continue
        lines.append(
            f"| {row['variant']} | {row['rps_median']:,.0f} | {row['rps_runs']} "
            f"| {row['p50_ms_median']} | {row['p99_ms_median']} | {row['errors']} |"
        )
    lines += [
        "",
        "## Upstream client, in-process, c=32 against the fake's /generate",
        "",
        "| client | CPU µs per request (median) |",
        "|---|---:|",
    ]
    for name, result in data["clients"].items():
        lines.append(f"| {name} | {result['cpu_us_per_request_median']} |")
    embed = data["embeddings"]
    lines += [
        "",
        f"## Embeddings: {embed['inputs']} inputs x 384 floats, shim's decode + encode",
        "",
        "| path | CPU ms per request |",
        "|---|---:|",
    ]
    for name, ms in embed["cpu_ms_per_request"].items():
        lines.append(f"| {name} | {ms} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["shim"]:
        return run_patched_shim(args_list[1], args_list[2:])
    parser = argparse.ArgumentParser(
        prog="python -m bench.experiments", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per variant (3)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run (4)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default=time.strftime("%Y-%m-%d") + "-experiments")
    parser.add_argument("--shim-ref", help="measure shim as of this git ref (default: installed)")
    args = parser.parse_args(args_list)
    data: dict[str, Any] = {
        "name": args.name,
        "command": "python -m bench.experiments " + " ".join(args_list),
        "shim_git": servers.installed_shim_sha(),
    }
    with tempfile.TemporaryDirectory(prefix="shim-experiments-") as tmp:
        work = Path(tmp)
        try:
            fake, ports = servers.start_fake(work, token_delay_ms=20)
            data["background_cores"] = procs.wait_for_quiet([fake.pid], limit=0.25, max_wait=10)
            print("== shim variants (chat c=32)")
            source = None
            if args.shim_ref:
                source, data["shim_git"] = servers.extract_shim(args.shim_ref, work)
                # This process imports shim too (the client experiment): the same copy.
                sys.path.insert(0, str(source))
            data["variants"] = shim_variants(
                work, ports, rounds=args.rounds, seconds=args.duration, source=source
            )
            print("== upstream client")
            data["clients"] = run_async(_clients(ports["fast"], count=8000, rounds=3))
        finally:
            procs.stop_all()
    print("== embeddings pass-through")
    data["embeddings"] = embeddings_passthrough()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(data, indent=1) + "\n")
    text = markdown(data)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
