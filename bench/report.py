"""The report: targets judged pass/fail, the markdown tables and the JSON file, and the plot
(drawn by ``bench.plot`` in the tools venv, where matplotlib lives).

Overheads are differences of percentiles (shim p50 minus direct p50), measured in separate
runs against the same fake; ``shim_overhead_seconds`` is shim's own view (total time minus
time waiting on the upstream), from ``/metrics``.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

from bench import envs
from bench.readings import SHIM
from bench.readings import check as _check
from bench.readings import count as _count
from bench.readings import get as _get
from bench.readings import num as _num
from bench.readings import ok as _ok
from bench.readings import targets_present as _targets_present
from bench.report_responses import responses_checks, responses_lines
from bench.stats import fmt_ms


def _c1_overhead(results: dict[str, Any], target: str, q: str) -> tuple[float | None, str]:
    """Sequential overhead: from the interleaved rounds when measured, else wrk's c=1 runs."""
    outcome = _ok(results, "chat_c1", target)
    interleaved = outcome.get("interleaved") if outcome else None
    if interleaved and "error" not in interleaved:
        return interleaved[f"overhead_{q}_ms"], "interleaved rounds, median of differences"
    direct = _ok(results, "chat_c1", "direct")
    if outcome and direct:
        value = outcome["load"]["latency_ms"][q] - direct["load"]["latency_ms"][q]
        return value, "wrk c=1, shim minus direct"
    return None, ""


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue, measured against its threshold."""
    checks: list[dict[str, Any]] = []
    chat, lite = _ok(results, "chat_c32", SHIM), _ok(results, "chat_c32", "litellm")
    rps = _num(_get(chat, "load", "rps"))
    checks.append(_check("chat c=32, 1 worker: RPS", rps, ">=", 1500, " req/s"))
    errors = _count(_get(chat, "load", "error_count"))
    checks.append(_check("chat c=32, 1 worker: errors", errors, "<=", 0, ""))
    lite_rps = _num(_get(lite, "load", "rps"))
    ratio = rps / lite_rps if rps and lite_rps else None
    hint = "" if lite else "run with --compare litellm"
    checks.append(_check("chat c=32: shim / LiteLLM RPS", ratio, ">=", 10, "x", hint))
    for q, limit in (("p50", 1.0), ("p99", 3.0)):
        value, method = _c1_overhead(results, SHIM, q)
        checks.append(_check(f"c=1 overhead vs direct, {q}", value, "<=", limit, " ms", method))
    streams = _ok(results, "streams_1000", SHIM)
    direct_streams = _ok(results, "streams_1000", "direct")
    stream_errors = _count(_get(streams, "load", "error_count"))
    checks.append(_check("1,000 streams: errors", stream_errors, "<=", 0, ""))
    ttft = _num(_get(streams, "load", "ttft_ms", "p50"))
    base = _num(_get(direct_streams, "load", "ttft_ms", "p50"))
    ttft_overhead = ttft - base if ttft is not None and base is not None else None
    checks.append(_check("1,000 streams: TTFT overhead p50", ttft_overhead, "<=", 2, " ms"))
    peak = _num(_get(streams, "peak_rss_mb"))
    checks.append(_check("1,000 streams: peak RSS", peak, "<=", 250, " MB"))
    idle = _num(_get(results, "targets", SHIM, "idle_rss_mb"))
    checks.append(_check("idle RSS (1 worker)", idle, "<=", 100, " MB"))
    embed, lite_embed = _ok(results, "embed_c32", SHIM), _ok(results, "embed_c32", "litellm")
    embed_rps, lite_embed_rps = (
        _num(_get(embed, "load", "rps")),
        _num(_get(lite_embed, "load", "rps")),
    )
    embed_ratio = embed_rps / lite_embed_rps if embed_rps and lite_embed_rps else None
    hint = "" if lite_embed else "run with --compare litellm"
    checks.append(_check("embeddings c=32: shim / LiteLLM RPS", embed_ratio, ">=", 10, "x", hint))
    added = _num(_get(_ok(results, "embed_256", SHIM), "load", "extra", "added_ms", "p50"))
    name = "256 inputs: added over slowest upstream call, p50"
    checks.append(_check(name, added, "<=", 5, " ms"))
    checks += responses_checks(results)
    multi = [k for k in results.get("targets", {}) if k.startswith("shim-") and k != SHIM]
    if multi:
        many = _num(_get(_ok(results, "chat_c32", multi[-1]), "load", "rps"))
        scale = many / rps if many and rps else None
        note = "informational: 2 cores shared with wrk and the fake"
        item = _check(f"throughput {multi[-1]} / shim-1w, chat c=32", scale, ">=", 1, "x", note)
        item["status"] = "info" if scale is not None else "n/a"
        checks.append(item)
    if "litellm" in results.get("targets", {}):
        value, method = _c1_overhead(results, "litellm", "p50")
        item = _check("LiteLLM c=1 overhead, p50 (reference)", value, "<=", 1, " ms", method)
        item["status"] = "info" if value is not None else "n/a"
        checks.append(item)
    return checks


# --- markdown -------------------------------------------------------------------------------


def _cell_overhead(outcome: dict[str, Any]) -> str:
    metric = outcome.get("overhead_metric")
    if not metric:
        return ""

    def ms(value: float) -> str:
        # Past the histogram's largest bucket (100 ms).
        return ">100" if math.isinf(value) else f"{value:.2f}"

    return f"{ms(metric['mean_ms'])} / {ms(metric['p50_ms'])} / {ms(metric['p99_ms'])}"


def _results_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| Scenario | Target | RPS | p50 ms | p99 ms | Errors | Δp50 vs direct ms "
        "| shim_overhead_seconds mean/p50/p99 ms | CPU s per 1k req | Peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    info = results.get("scenario_info", {})
    labels = {k: v.get("label", k) for k, v in results.get("targets", {}).items()}
    for sid, by_target in results.get("scenarios", {}).items():
        title = info.get(sid, {}).get("title", sid)
        direct = by_target.get("direct") if isinstance(by_target, dict) else None
        for key in _targets_present(results):
            outcome = by_target.get(key)
            if outcome is None:
                continue
            name = labels.get(key, key)
            if outcome.get("status") != "ok":
                note = str(outcome.get("note", ""))[:70].replace("|", "/")
                lines.append(f"| {title} | {name} | {outcome.get('status')} ({note}) |||||||||")
                continue
            lat = outcome["load"]["latency_ms"]
            delta = ""
            if key != "direct" and direct and direct.get("status") == "ok":
                delta = fmt_ms(lat["p50"] - direct["load"]["latency_ms"]["p50"])
            errors = outcome["load"]["error_count"]
            if sid == "error_404":
                errors = f"{errors} (expected 4xx)"
            cpu = outcome.get("cpu_per_1000")
            peak = outcome.get("peak_rss_mb")
            runs = outcome["load"].get("extra", {}).get("rps_runs")
            rps = f"{outcome['load']['rps']:,.0f}"
            if runs:
                rps += f" ({min(runs):,.0f}-{max(runs):,.0f})"
            lines.append(
                f"| {title} | {name} | {rps} | {fmt_ms(lat['p50'])} "
                f"| {fmt_ms(lat['p99'])} | {errors} | {delta} | {_cell_overhead(outcome)} "
                f"| {'' if cpu is None else f'{cpu:.3f}'} | {'' if peak is None else peak} |"
            )
    return lines


def _streams_table(results: dict[str, Any]) -> list[str]:
    by_target = _get(results, "scenarios", "streams_1000")
    if not by_target:
        return []
    direct = by_target.get("direct") if by_target.get("direct", {}).get("status") == "ok" else None
    lines = [
        "| Target | streams/s | tokens/s | TTFT p50 ms | TTFT p99 ms | TTFT overhead p50 ms "
        "| stream p50 ms | errors | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {k: v.get("label", k) for k, v in results.get("targets", {}).items()}
    for key in _targets_present(results):
        outcome = by_target.get(key)
        if not outcome or outcome.get("status") != "ok":
            continue
        ttft = outcome["load"]["ttft_ms"] or {}
        over = ""
        if key != "direct" and direct:
            over = fmt_ms(ttft.get("p50", math.nan) - direct["load"]["ttft_ms"]["p50"])
        lines.append(
            f"| {labels.get(key, key)} | {outcome['load']['rps']:,.0f} "
            f"| {outcome.get('tokens_per_second', 0):,.0f} | {fmt_ms(ttft.get('p50'))} "
            f"| {fmt_ms(ttft.get('p99'))} | {over} "
            f"| {fmt_ms(outcome['load']['latency_ms']['p50'])} "
            f"| {outcome['load']['error_count']} | {outcome.get('peak_rss_mb') or ''} |"
        )
    return lines


def _gc_cell(outcome: dict[str, Any]) -> str:
    runs = outcome.get("gc_runs")
    return f"{runs['gen0']} / {runs['gen1']} / {runs['gen2']}" if runs else ""


def _cpu_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| Scenario | Target | target CPU % | fake CPU % | load generator CPU % "
        "| other processes CPU % | target GC runs gen0/1/2 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    info = results.get("scenario_info", {})
    labels = {k: v.get("label", k) for k, v in results.get("targets", {}).items()}
    for sid, by_target in results.get("scenarios", {}).items():
        for key in _targets_present(results):
            outcome = by_target.get(key)
            if not outcome or outcome.get("status") != "ok":
                continue
            util = outcome["cpu_util"]
            target_cpu = "" if key == "direct" else f"{100 * util['target']:.0f}"
            lines.append(
                f"| {info.get(sid, {}).get('title', sid)} | {labels.get(key, key)} | {target_cpu} "
                f"| {100 * util['fake']:.0f} | {100 * util['loadgen']:.0f} "
                f"| {100 * util.get('other', 0):.0f} | {_gc_cell(outcome)} |"
            )
    return lines


def _interleaved_lines(results: dict[str, Any]) -> list[str]:
    rows = []
    labels = {k: v.get("label", k) for k, v in results.get("targets", {}).items()}
    for key in _targets_present(results):
        outcome = _ok(results, "chat_c1", key)
        data = outcome.get("interleaved") if outcome else None
        if not data or "error" in data:
            continue
        rows.append(
            f"| {labels.get(key, key)} | {data['rounds']} x {data['per_round']} "
            f"| {data['target_p50_ms']:.3f} | {data['direct_p50_ms']:.3f} "
            f"| **{data['overhead_p50_ms']:.3f}** | {data['target_p99_ms']:.3f} "
            f"| {data['direct_p99_ms']:.3f} | **{data['overhead_p99_ms']:.3f}** |"
        )
    if not rows:
        return []
    return [
        "## Sequential overhead (interleaved rounds)",
        "",
        "One keep-alive connection each; rounds alternate between the target and the upstream "
        "call it makes; values are medians over rounds (ms).",
        "",
        "| Target | rounds | p50 | direct p50 | overhead p50 | p99 | direct p99 | overhead p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def _fanout_lines(results: dict[str, Any]) -> list[str]:
    rows = []
    labels = {k: v.get("label", k) for k, v in results.get("targets", {}).items()}
    for key in _targets_present(results):
        outcome = _ok(results, "embed_256", key)
        extra = _get(outcome, "load", "extra") or {}
        if not outcome or key == "direct":
            continue
        lat, slowest, added = (
            outcome["load"]["latency_ms"],
            extra.get("slowest_upstream_ms"),
            extra.get("added_ms"),
        )
        rows.append(
            f"| {labels.get(key, key)} | {fmt_ms(lat['p50'])} | {fmt_ms(lat['p99'])} "
            f"| {fmt_ms(_get(slowest, 'p50'))} | {fmt_ms(_get(slowest, 'p99'))} "
            f"| {fmt_ms(_get(added, 'p50'))} | {fmt_ms(_get(added, 'p99'))} |"
        )
    if not rows:
        return []
    return [
        "## One request, 256 inputs (8 upstream calls of 32)",
        "",
        "Per round: the 8 batch calls sent straight to the fake at once (the slowest is kept), "
        "then the one request through the target (ms).",
        "",
        "| Target | request p50 | p99 | slowest direct call p50 | p99 | added p50 | added p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def _noise_lines(results: dict[str, Any]) -> list[str]:
    """Runs during which other processes used more than half a core."""
    noisy = []
    for sid, by_target in results.get("scenarios", {}).items():
        for key, outcome in by_target.items():
            other = _get(outcome, "cpu_util", "other")
            if other is not None and other > 0.5:
                noisy.append(f"{sid}/{key} ({100 * other:.0f}%)")
    if not noisy:
        return []
    return [
        f"> Note: other processes on the machine used more than half a core during: "
        f"{', '.join(noisy)}. Those figures are pessimistic; CPU seconds per request are the "
        "least affected.",
        "",
    ]


def _profile_lines(results: dict[str, Any]) -> list[str]:
    profile = results.get("profile")
    if not profile:
        return []
    lines = ["## Profile (py-spy, shim 1 worker)", ""]
    for sid, summary in profile.items():
        if not isinstance(summary, dict) or "self" not in summary:
            lines.append(f"- {sid}: {summary}")
            continue
        lines.append(
            f"### {sid}: {summary['samples']} samples, "
            f"collapsed stacks in `{summary.get('collapsed_stacks', '')}`"
        )
        lines += ["", "| Package (self time) | % |", "|---|---:|"]
        lines += [f"| {p['function']} | {p['percent']} |" for p in summary["packages"][:10]]
        lines += ["", "| Part of the request path (inclusive) | % |", "|---|---:|"]
        lines += [f"| {p['function']} | {p['percent']} |" for p in summary.get("components", [])]
        lines += ["", "| Top functions, self time | % |", "|---|---:|"]
        lines += [f"| `{p['function']}` | {p['percent']} |" for p in summary["self"][:12]]
        lines += ["", "| Top functions, inclusive | % |", "|---|---:|"]
        lines += [f"| `{p['function']}` | {p['percent']} |" for p in summary["inclusive"][:15]]
        lines.append("")
    return lines


def markdown(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    lines = [
        f"# shim benchmark, {results.get('name')}",
        "",
        f"`{results.get('command', 'python -m bench')}` on {machine.get('cpus')} CPUs "
        f"({machine.get('cpu_model')}), Linux {machine.get('kernel')}, Python "
        f"{machine.get('python')}; load generator {results.get('load_generator')}; shim at "
        f"`{results.get('shim_git')}`; LiteLLM {results.get('litellm_version', 'not run')}. "
        f"Load generator, fake upstream and the server under test share the same cores. "
        f"{results.get('settings', {}).get('duration_s')} s per run after a "
        f"{results.get('settings', {}).get('warmup_s')} s warm-up; whole run "
        f"{results.get('elapsed_s')} s.",
        "",
        *_noise_lines(results),
        "## Targets",
        "",
        "| Target | Measured | Threshold | Result |",
        "|---|---:|---:|---|",
    ]
    for check in results.get("checks", evaluate(results)):
        value = "n/a" if check["value"] is None else f"{check['value']:,.2f}{check['unit']}"
        note = f" ({check['note']})" if check["note"] and check["status"] != "PASS" else ""
        lines.append(
            f"| {check['target']} | {value} | {check['limit']} | **{check['status']}**{note} |"
        )
    lines += ["", "## Results", "", *_results_table(results), ""]
    lines += responses_lines(results)
    lines += _interleaved_lines(results)
    lines += _fanout_lines(results)
    streams = _streams_table(results)
    if streams:
        lines += ["## Concurrent streams", "", *streams, ""]
    lines += [
        "## Memory",
        "",
        "| Target | processes | idle RSS MB | RSS after load MB |",
        "|---|---:|---:|---:|",
    ]
    for key in _targets_present(results):
        t = results["targets"][key]
        if "idle_rss_mb" in t:
            lines.append(
                f"| {t['label']} | {t.get('processes')} | {t['idle_rss_mb']} "
                f"| {t.get('rss_after_load_mb', '')} |"
            )
    lines += [
        "",
        f"## CPU split (share of one core; the machine has {machine.get('cpus')})",
        "",
        *_cpu_table(results),
        "",
    ]
    lines += _profile_lines(results)
    if results.get("litellm_error"):
        lines += ["", f"LiteLLM: {results['litellm_error']}"]
    return "\n".join(lines).rstrip() + "\n"


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write(results: dict[str, Any], out: Path, name: str, *, plot: bool) -> list[Path]:
    """``<name>.json``, ``<name>.md`` and (unless ``plot`` is false) ``<name>.png``."""
    results["checks"] = evaluate(results)
    json_path = out / f"{name}.json"
    strict = json.dumps(_finite(results), indent=1, default=str, allow_nan=False)
    json_path.write_text(strict + "\n")
    md_path = out / f"{name}.md"
    written = [json_path, md_path]
    png_path = out / f"{name}.png"
    if plot:
        python = envs.tools_python()
        if python is not None:
            done = subprocess.run(
                [str(python), "-m", "bench.plot", str(json_path), str(png_path)],
                cwd=envs.BENCH_DIR.parent,
                check=False,
            )
            if done.returncode == 0:
                written.append(png_path)
    text = markdown(results)
    if png_path.exists():
        text = text.replace(
            "## Targets", f"![latency and throughput]({png_path.name})\n\n## Targets", 1
        )
    md_path.write_text(text)
    return written
