"""Work done once at startup, never in the request path: chat templates from the Hub (cached
on disk), TEI batch limits from ``/info``; and the optional upstream probe of ``/ready``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import msgspec

from shim import templates
from shim.errors import ShimError
from shim.routing import Route
from shim.services import Services

log = logging.getLogger("shim.startup")
HUB_TIMEOUT = 10.0
PROBE_TIMEOUT = 3.0


def _cache_dir(services: Services) -> Path:
    configured = services.config.huggingface.cache_dir
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shim" / "templates"


async def prepare(services: Services) -> list[asyncio.Task[None]]:
    """What must be ready before serving (chat templates, TEI batch limits); returns the
    background tasks of what merely improves answers once done (tokenizers for token counts)."""
    routes = list(services.router.routes.values())
    await asyncio.gather(
        *(fetch_template(services, r) for r in routes if r.needs_hub_template),
        *(read_tei_info(services, r) for r in routes if r.protocol == "tei"),
    )
    return [asyncio.create_task(load_tokenizer(services, r)) for r in routes if _wants_tokenizer(r)]


def _wants_tokenizer(route: Route) -> bool:
    return route.task == "feature-extraction" and route.config.tokenizer is not None


async def load_tokenizer(services: Services, route: Route) -> None:
    """The model's ``tokenizer.json`` (a file, or the Hub's cached on disk), loaded with the
    ``tokenizers`` package when it is installed; without either, token counts are estimated."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        log.warning("%s: `tokenizer` is set but the tokenizers package is missing", route.name)
        return
    spec = route.config.tokenizer
    assert spec is not None
    if spec == "hub":
        text = await _hub_tokenizer(services, route)
    else:
        text = _read_tokenizer_file(spec, Path(services.config.source).parent, route.name)
    if text is None:
        return
    try:
        route.tokenizer = Tokenizer.from_str(text)
    except Exception as exc:  # the tokenizers library raises plain Exceptions
        log.warning("%s: unusable tokenizer.json: %s", route.name, type(exc).__name__)
        return
    log.info("%s: prompt tokens counted with the model's tokenizer", route.name)


def _read_cached(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _read_tokenizer_file(spec: str, base: Path, name: str) -> str | None:
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = base / path
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        log.warning("%s: cannot read the tokenizer %s: %s", name, path, exc.strerror)
        return None


async def _hub_tokenizer(services: Services, route: Route) -> str | None:
    assert route.hf_model is not None
    path = _cache_dir(services) / (route.hf_model.replace("/", "--") + "--tokenizer.json")
    cached = _read_cached(path)
    if cached is not None:
        return cached
    data = await _hub_get(services, route, "tokenizer.json")
    if data is None:
        return None
    text = data.decode("utf-8", "replace")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        log.warning("%s: cannot cache the tokenizer: %s", route.name, exc)
    return text


async def _hub_get(services: Services, route: Route, filename: str) -> bytes | None:
    hub = services.config.huggingface.hub_url.rstrip("/")
    url = f"{hub}/{route.hf_model}/resolve/main/{filename}"
    headers = {k: v for k, v in route.headers.items() if k == "authorization"}
    try:
        response = await services.upstream.get(url, headers=headers, limit=HUB_TIMEOUT)
    except ShimError as exc:
        reason = services.scrubber(exc.message)
        log.warning("%s: cannot reach the Hub for %s: %s", route.name, filename, reason)
        return None
    if response.status_code != 200:
        if response.status_code != 404:
            log.warning("%s: Hub answered %d for %s", route.name, response.status_code, filename)
        return None
    return response.content


async def fetch_template(services: Services, route: Route) -> None:
    """The model's chat template from its ``tokenizer_config.json`` (or ``chat_template.jinja``),
    fetched with the model's token, cached on disk."""
    assert route.hf_model is not None
    path = templates.cache_path(_cache_dir(services), route.hf_model)
    cached: templates.CachedTemplate | None = None
    try:
        cached = msgspec.json.decode(path.read_bytes(), type=templates.CachedTemplate)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        config = await _hub_get(services, route, "tokenizer_config.json")
        if config is not None:
            jinja = await _hub_get(services, route, "chat_template.jinja")
            cached = templates.CachedTemplate(
                tokenizer_config=config.decode("utf-8", "replace"),
                jinja=jinja.decode("utf-8", "replace") if jinja is not None else None,
            )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(msgspec.json.encode(cached))
            except OSError as exc:
                log.warning("%s: cannot cache the chat template: %s", route.name, exc)
    if cached is None:
        log.warning(
            "%s: no chat template (chat will answer 400 until one is configured)", route.name
        )
        return
    try:
        route.template = templates.from_tokenizer_config(
            cached.tokenizer_config.encode(), jinja=cached.jinja, origin=f"hub:{route.hf_model}"
        )
    except templates.TemplateError as exc:
        log.warning("%s: %s", route.name, services.scrubber(str(exc)))
        return
    if route.template is None:
        log.warning("%s: %s has no chat template", route.name, route.hf_model)
    else:
        log.info(
            "%s: chat template from the Hub (%s); tools: %s, reasoning: %s",
            route.name,
            route.hf_model,
            route.tool_parser,
            route.reasoning_parser,
        )


class _Info(msgspec.Struct):
    max_client_batch_size: int | None = None


async def read_tei_info(services: Services, route: Route) -> None:
    """TEI's ``max_client_batch_size``, unless ``max_batch_size`` is configured."""
    if route.config.max_batch_size is not None:
        return
    endpoint = route.endpoints[0]
    try:
        response = await services.upstream.get(
            endpoint.base + "/info", headers=route.headers, limit=PROBE_TIMEOUT
        )
        info = msgspec.json.decode(response.content, type=_Info)
    except (ShimError, msgspec.DecodeError, msgspec.ValidationError):
        log.info(
            "%s: TEI /info not readable; max_batch_size stays %d", route.name, route.max_batch_size
        )
        return
    if response.status_code == 200 and info.max_client_batch_size:
        route.max_batch_size = info.max_client_batch_size
        log.info("%s: TEI max_client_batch_size = %d", route.name, route.max_batch_size)


async def probe_upstreams(services: Services) -> dict[str, Any]:
    """``/ready?upstreams=1``: each distinct upstream's health route, per model, no tokens."""
    results: dict[str, dict[str, Any]] = {}
    probes: dict[str, Any] = {}
    for route in services.router.routes.values():
        for endpoint in route.endpoints:
            if route.serverless:
                continue
            health = endpoint.base.removesuffix("/v1") + "/health"
            if health not in probes:
                probes[health] = asyncio.ensure_future(_probe(services, route, health))
    outcomes = {url: await task for url, task in probes.items()}
    for route in services.router.routes.values():
        if route.serverless:
            results[route.name] = {"status": "serverless", "upstreams": []}
            continue
        ups = [
            {"url": e.display, "status": outcomes[e.base.removesuffix("/v1") + "/health"]}
            for e in route.endpoints
        ]
        ok = any(u["status"] == "ok" for u in ups)
        results[route.name] = {"status": "ok" if ok else "unavailable", "upstreams": ups}
    return results


async def _probe(services: Services, route: Route, url: str) -> str:
    try:
        response = await services.upstream.get(url, headers=route.headers, limit=PROBE_TIMEOUT)
    except ShimError as exc:
        return exc.reason if hasattr(exc, "reason") else "error"
    return "ok" if response.status_code < 400 else f"http_{response.status_code}"
