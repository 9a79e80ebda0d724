"""The operational routes: ``/health``, ``/ready`` (and its optional probe of every upstream's
``/health``), ``/metrics``."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import MediaType, Response, get
from litestar.datastructures import State

from shim.errors import NotFoundError, ShimError, UpstreamError
from shim.route import Route
from shim.services import Services

PROBE_TIMEOUT = 3.0
_encoder = msgspec.json.Encoder()


@get("/health", media_type=MediaType.JSON)
async def health() -> bytes:
    return b'{"status":"ok"}'


@get("/ready")
async def ready(state: State, upstreams: int = 0) -> Response[bytes]:
    services: Services = state.shim
    status = 200 if services.ready and not services.draining else 503
    body: dict[str, Any] = {"status": "ready" if status == 200 else "draining"}
    if not services.ready:
        body["status"] = "starting"
    if upstreams:
        body["models"] = await probe_upstreams(services)
    return Response(_encoder.encode(body), status_code=status, media_type=MediaType.JSON)


@get("/metrics")
async def metrics(state: State) -> Response[bytes]:
    services: Services = state.shim
    if not services.metrics.enabled:
        raise NotFoundError("Metrics are disabled (`[server] metrics = false`).")
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)


def _health_url(base: str) -> str:
    return base.removesuffix("/v1") + "/health"


async def probe_upstreams(services: Services) -> dict[str, Any]:
    """``/ready?upstreams=1``: each distinct upstream's health route, per model, no tokens."""
    routes = [r for r in services.active.router.routes.values() if not r.serverless]
    probes: dict[str, asyncio.Future[str]] = {}
    for route in routes:
        for upstream in route.upstreams:
            url = _health_url(upstream.base)
            if url not in probes:
                probes[url] = asyncio.ensure_future(_probe(services, route, url))
    outcomes = {url: await task for url, task in probes.items()}
    results: dict[str, dict[str, Any]] = {}
    for route in services.active.router.routes.values():
        if route.serverless:
            results[route.name] = {"status": "serverless", "upstreams": []}
            continue
        ups = [{"url": u.display, "status": outcomes[_health_url(u.base)]} for u in route.upstreams]
        ok = any(u["status"] == "ok" for u in ups)
        results[route.name] = {"status": "ok" if ok else "unavailable", "upstreams": ups}
    return results


async def _probe(services: Services, route: Route, url: str) -> str:
    try:
        response = await services.client.get(url, headers=route.headers, limit=PROBE_TIMEOUT)
    except ShimError as exc:
        return exc.reason if isinstance(exc, UpstreamError) else "error"
    return "ok" if response.status_code < 400 else f"http_{response.status_code}"


route_handlers = [health, ready, metrics]
