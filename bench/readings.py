"""Reading a results dict (``python -m bench``'s JSON): outcomes by scenario and target,
numbers that may be missing, and a target judged against its threshold.
"""

from __future__ import annotations

import math
from typing import Any

TARGET_ORDER = ("direct", "shim-1w", "shim-2w", "shim-4w", "litellm")
SHIM = "shim-1w"


def get(data: dict[str, Any] | None, *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def ok(results: dict[str, Any], scenario: str, target: str) -> dict[str, Any] | None:
    outcome = get(results, "scenarios", scenario, target)
    return outcome if outcome and outcome.get("status") == "ok" else None


def num(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def check(
    name: str, value: float | None, op: str, limit: float, unit: str, why: str = ""
) -> dict[str, Any]:
    if value is None:
        status = "n/a"
    elif op == ">=":
        status = "PASS" if value >= limit else "FAIL"
    else:
        status = "PASS" if value <= limit else "FAIL"
    return {
        "target": name,
        "value": None if value is None else round(value, 3),
        "limit": f"{op} {limit:g}{unit}",
        "unit": unit,
        "status": status,
        "note": why,
    }


def count(value: Any) -> float | None:
    return None if value is None else float(value)


def targets_present(results: dict[str, Any]) -> list[str]:
    present = set(results.get("targets", {}))
    return [t for t in TARGET_ORDER if t in present] + sorted(present - set(TARGET_ORDER))
