"""Reading shim's ``/metrics``: histogram snapshots, their difference over a run, and
quantiles estimated from buckets the way PromQL's ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts by upper bound, plus sum and count, over chosen series."""

    buckets: dict[float, float]
    sum: float
    count: float

    def __sub__(self, other: Histogram) -> Histogram:
        return Histogram(
            buckets={le: n - other.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            sum=self.sum - other.sum,
            count=self.count - other.count,
        )

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """Linear interpolation inside the bucket holding rank ``q * count``; ``inf`` when that
        is the ``+Inf`` bucket (beyond the largest bound)."""
        if self.count <= 0:
            return math.nan
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for le in sorted(self.buckets):
            count = self.buckets[le]
            if count >= rank:
                if math.isinf(le):
                    return math.inf
                width = count - lower_count
                if width <= 0:
                    return le
                return lower_bound + (le - lower_bound) * (rank - lower_count) / width
            lower_bound, lower_count = le, count
        return lower_bound


def scrape(url: str, timeout: float = 5.0) -> str:
    with _opener.open(url, timeout=timeout) as response:
        text: str = response.read().decode()
        return text


def histogram(text: str, name: str, **labels: str) -> Histogram:
    """The histogram ``name`` summed over every series whose labels match ``labels``."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            if sample.name == name + "_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name == name + "_sum":
                total += sample.value
            elif sample.name == name + "_count":
                count += sample.value
    return Histogram(buckets, total, count)


def counter(text: str, name: str, **labels: str) -> float:
    """A counter summed over the series matching ``labels`` (``name`` without ``_total``)."""
    value = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                value += sample.value
    return value
