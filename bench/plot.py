"""The results plot: throughput and latency percentiles per scenario, one bar per target.

Runs in the tools venv (matplotlib): ``python -m bench.plot results.json out.png``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

COLORS = {
    "direct": "#9e9e9e",
    "shim-1w": "#1f77b4",
    "shim-2w": "#6baed6",
    "litellm": "#d62728",
}


def _ms(value: float | None) -> float:
    return 0.0 if value is None or math.isnan(value) else value


def _series(results: dict[str, Any]) -> tuple[list[str], list[str], dict[str, Any]]:
    order = [t for t in ("direct", "shim-1w", "shim-2w", "litellm") if t in results["targets"]]
    order += sorted(set(results["targets"]) - set(order))
    scenarios = list(results["scenarios"])
    return scenarios, order, results["scenarios"]


def draw(results: dict[str, Any], out: Path) -> None:
    import matplotlib  # type: ignore[import-not-found]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found]

    scenarios, targets, data = _series(results)
    titles = [results["scenario_info"].get(s, {}).get("title", s) for s in scenarios]
    labels = {k: v["label"] for k, v in results["targets"].items()}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), dpi=80)
    width = 0.8 / max(1, len(targets))
    for i, target in enumerate(targets):
        xs, rps, p50, p99 = [], [], [], []
        for j, sid in enumerate(scenarios):
            outcome = data[sid].get(target)
            if not outcome or outcome.get("status") != "ok":
                continue
            xs.append(j + (i - (len(targets) - 1) / 2) * width)
            rps.append(max(outcome["load"]["rps"], 0.1))
            lat = outcome["load"]["latency_ms"]
            p50.append(_ms(lat["p50"]))
            p99.append(_ms(lat["p99"]))
        color = COLORS.get(target)
        left.bar(xs, rps, width, label=labels.get(target, target), color=color)
        right.bar(xs, p50, width, color=color)
        right.scatter(
            xs, p99, marker="_", s=120, color="black", zorder=3, label="p99" if i == 0 else None
        )
    for axis, title, unit in (
        (left, "Throughput", "requests (streams) / s"),
        (right, "Latency: bar = p50, dash = p99", "ms"),
    ):
        axis.set_yscale("log")
        axis.set_title(title)
        axis.set_ylabel(unit + " (log)")
        axis.set_xticks(range(len(scenarios)))
        axis.set_xticklabels(titles, rotation=30, ha="right", fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    handles, names = left.get_legend_handles_labels()
    marker, marker_name = right.get_legend_handles_labels()
    fig.legend(
        handles + marker,
        names + marker_name,
        loc="upper center",
        ncol=len(names) + 1,
        fontsize=8,
        bbox_to_anchor=(0.5, 0.94),
        frameon=False,
    )
    machine = results.get("machine", {})
    fig.suptitle(
        f"shim benchmark {results.get('name')}: {machine.get('cpus')} CPUs shared by "
        "load generator, fake upstream and server",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(out, dpi=80)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.plot RESULTS.json OUT.png", file=sys.stderr)
        return 2
    results = json.loads(Path(argv[0]).read_text())
    draw(results, Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
