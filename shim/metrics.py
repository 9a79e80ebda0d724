"""Prometheus metrics on an injected ``CollectorRegistry`` (names are a contract: dashboards and
alerts use them). Label values come only from config-known names, so cardinality is bounded.

With several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``shim serve`` and ``render``
aggregates every worker's files.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    gc_collector,
    generate_latest,
    multiprocess,
    platform_collector,
    process_collector,
)

from shim.context import RequestContext

# LLM latencies: from a cached answer in milliseconds to long generations in minutes.
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600,
)  # fmt: skip
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5)
# What shim itself adds: sub-millisecond resolution.
OVERHEAD_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
)  # fmt: skip


class TokenClock:
    """When a stream's output tokens went out (first, last, how many): cheap per token, turned
    into histogram observations once per stream."""

    __slots__ = ("count", "first", "last")

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    def tick(self, tokens: int = 1) -> None:
        now = time.perf_counter()
        if not self.count:
            self.first = now
        self.last = now
        self.count += tokens


class Metrics:
    def __init__(
        self, registry: CollectorRegistry, *, key_label: bool = False, enabled: bool = True
    ) -> None:
        self.enabled = enabled
        # `_created` series double the output and no dashboard uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.key_label = key_label
        if not self.multiprocess:
            process_collector.ProcessCollector(registry=registry)
            platform_collector.PlatformCollector(registry=registry)
            gc_collector.GCCollector(registry=registry)
        request_labels = ["model", "endpoint", "status"] + (["key"] if key_label else [])
        self.requests = Counter(
            "shim_requests", "Requests by model, endpoint and HTTP status.",
            request_labels, registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "shim_request_duration_seconds", "Whole request as the client sees it, to last byte.",
            ["model", "endpoint"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "shim_time_to_first_token_seconds", "Streams: request start to first content token.",
            ["model"], buckets=TTFT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.tpot = Histogram(
            "shim_time_per_output_token_seconds",
            "Streams: mean time between output tokens, one observation per stream.",
            ["model"], buckets=TPOT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.tokens = Counter(
            "shim_tokens", "Tokens by model and kind (prompt|completion).",
            ["model", "kind"], registry=registry,
        )  # fmt: skip
        self.upstream_duration = Histogram(
            "shim_upstream_request_duration_seconds", "Time spent waiting on the upstream.",
            ["model"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "shim_upstream_errors", "Upstream failures by reason.",
            ["model", "reason"], registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "shim_in_flight_requests", "Requests being served.",
            ["model"], registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.overhead = Histogram(
            "shim_overhead_seconds", "Total time minus time waiting on the upstream.",
            ["model", "endpoint"], buckets=OVERHEAD_BUCKETS, registry=registry,
        )  # fmt: skip
        # Pre-bound label children: .labels() is a locked dict lookup we do once per series.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def enter(self, model: str) -> None:
        """A reply to ``model`` begins (the in-flight gauge; ``leave`` when its last byte went)."""
        if self.enabled:
            self._child(self.in_flight, model).inc()

    def leave(self, model: str) -> None:
        if self.enabled:
            self._child(self.in_flight, model).dec()

    def finish(self, ctx: RequestContext, now: float) -> None:
        """A request is over: its counters and histograms."""
        if not self.enabled:
            return
        # The `endpoint` label (a dashboard contract) is the API operation.
        model, api = ctx.model, ctx.api
        labels: tuple[str, ...] = (model, api, str(ctx.status))
        if self.key_label:
            labels = (*labels, ctx.key_name or "")
        self._child(self.requests, *labels).inc()
        self._child(self.duration, model, api).observe(now - ctx.start)
        self._child(self.overhead, model, api).observe(ctx.overhead(now))
        if ctx.upstream_seconds:
            self._child(self.upstream_duration, model).observe(ctx.upstream_seconds)
        if ctx.prompt_tokens:
            self._child(self.tokens, model, "prompt").inc(ctx.prompt_tokens)
        if ctx.completion_tokens:
            self._child(self.tokens, model, "completion").inc(ctx.completion_tokens)

    def stream_timing(self, model: str, clock: TokenClock, start: float) -> None:
        """A finished (or abandoned) stream: its time to first token and time per token."""
        if not self.enabled or not clock.count:
            return
        self._child(self.ttft, model).observe(clock.first - start)
        if clock.count > 1:
            self._child(self.tpot, model).observe((clock.last - clock.first) / (clock.count - 1))

    def upstream_error(self, model: str, reason: str) -> None:
        if self.enabled:
            self._child(self.upstream_errors, model, reason).inc()

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
