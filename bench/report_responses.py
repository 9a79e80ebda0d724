"""The Responses part of the report: ``/v1/responses`` judged against chat of the same run
(the issue: non-stream c=32 "within 20 % of chat's requests/s ... with SQLite and with
Redis"), and the table of Responses next to chat per target.
"""

from __future__ import annotations

from typing import Any

from bench.readings import SHIM, check, count, get, num, ok, targets_present

#: The Responses scenarios judged against chat c=32 of the same run: (id, store).
RESPONSES = (("responses_c32", "SQLite"), ("responses_redis_c32", "Redis"))
#: Responses must keep this share of chat's throughput (the issue: "within 20 %").
RESPONSES_RATIO = 0.8


def _why_not(results: dict[str, Any], scenario: str, target: str) -> str:
    """Why ``scenario`` has no figure on ``target``: its status and note."""
    outcome = get(results, "scenarios", scenario, target)
    if not outcome:
        return f"{scenario} not run"
    return f"{scenario} {outcome.get('status')}: {str(outcome.get('note', ''))[:90]}"


def ratio(
    results: dict[str, Any], scenario: str, base: str, target: str
) -> tuple[float | None, str]:
    """RPS of ``scenario`` over RPS of ``base`` on ``target``; else None and why."""
    rps = num(get(ok(results, scenario, target), "load", "rps"))
    base_rps = num(get(ok(results, base, target), "load", "rps"))
    if rps is not None and base_rps:
        return rps / base_rps, ""
    return None, _why_not(results, scenario if rps is None else base, target)


def responses_checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for sid, store in RESPONSES:
        value, why = ratio(results, sid, "chat_c32", SHIM)
        name = f"Responses c=32, {store} store / chat c=32 RPS, 1 worker"
        checks.append(check(name, value, ">=", RESPONSES_RATIO, "x", why))
        errors = count(get(ok(results, sid, SHIM), "load", "error_count"))
        why = "" if errors is not None else _why_not(results, sid, SHIM)
        checks.append(check(f"Responses c=32, {store} store: errors", errors, "<=", 0, "", why))
    return checks


def _rps_cell(results: dict[str, Any], scenario: str, target: str) -> str:
    outcome = get(results, "scenarios", scenario, target)
    if not outcome:
        return ""
    if outcome.get("status") != "ok":
        return str(outcome.get("status"))
    return f"{outcome['load']['rps']:,.0f}"


def _ratio_cell(results: dict[str, Any], scenario: str, base: str, target: str) -> str:
    value = ratio(results, scenario, base, target)[0]
    if value is None:
        return ""
    return f"{value:.2f}"


def _stored_cell(results: dict[str, Any], target: str) -> str:
    info = get(results, "targets", target) or {}
    parts = []
    if info.get("state_db_mb") is not None:
        parts.append(f"SQLite {info['state_db_mb']} MB")
    keys = get(info, "variants", "redis", "redis_keys")
    if keys is not None:
        parts.append(f"Redis {keys:,} keys")
    return ", ".join(parts)


def responses_lines(results: dict[str, Any]) -> list[str]:
    """Responses next to chat, per target, with the ratio the issue judges (>= 0.8)."""
    ids = ("responses_c32", "responses_redis_c32", "responses_stream_c32")
    scenarios = results.get("scenarios", {})
    if not any(sid in scenarios for sid in ids):
        return []
    labels = {k: v.get("label", k) for k, v in results.get("targets", {}).items()}
    rows = []
    for key in targets_present(results):
        if key == "direct" or not any(key in scenarios.get(sid, {}) for sid in ids):
            continue
        cells = [labels.get(key, key), _rps_cell(results, "chat_c32", key)]
        for sid in ids[:2]:
            cells += [_rps_cell(results, sid, key), _ratio_cell(results, sid, "chat_c32", key)]
        cells += [
            _rps_cell(results, "stream_c32", key),
            _rps_cell(results, "responses_stream_c32", key),
            _ratio_cell(results, "responses_stream_c32", "stream_c32", key),
            _stored_cell(results, key),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "## Responses API next to chat",
        "",
        f"Requests/s in this run; the ratios are Responses over chat (target >= "
        f"{RESPONSES_RATIO:g} for non-stream c=32, with each store). Every Responses request "
        "is stored (`store: true`); *stored* is the store's size after the runs.",
        "",
        "| Target | chat c=32 | Responses, SQLite | / chat | Responses, Redis | / chat "
        "| chat stream c=32 | Responses stream | / chat stream | stored |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]
