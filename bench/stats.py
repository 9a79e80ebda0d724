"""Result types shared by the load generators, and percentile arithmetic.

Latencies are milliseconds throughout; ``LoadResult`` is what one load run against one target
produced, whatever tool made it (wrk, the asyncio stream client, aiohttp).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Latency summary in milliseconds (``count`` samples)."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float


def percentiles(values: list[float]) -> Percentiles:
    """Nearest-rank percentiles of ``values`` (NaN when empty)."""
    if not values:
        nan = float("nan")
        return Percentiles(0, nan, nan, nan, nan, nan)
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]

    return Percentiles(
        count=len(ordered),
        mean=sum(ordered) / len(ordered),
        p50=rank(50),
        p90=rank(90),
        p99=rank(99),
        max=ordered[-1],
    )


@dataclass
class LoadResult:
    """One load run: completed requests, failures by kind, wall time, latency (ms)."""

    requests: int
    errors: dict[str, int]
    duration: float
    latency_ms: Percentiles
    tool: str
    ttft_ms: Percentiles | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rps"] = round(self.rps, 1)
        data["error_count"] = self.error_count
        return data


def fmt_ms(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}"
