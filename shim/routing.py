"""Routing resolved once at config load: public model name → ``Route`` (URLs, headers,
adapter, template, timeouts, limits), so the request path does a single dict lookup.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import msgspec

from shim import templates
from shim.adapters.text_generation import TGI, Pipeline
from shim.config import (
    Config,
    ConfigError,
    ModelConfig,
    Protocol,
    Task,
    protocol_of,
    urls_of,
    userinfo_of,
    without_userinfo,
)
from shim.errors import InvalidRequestError, ModelNotFoundError, RateLimitError
from shim.openai import common

GenerationAdapter = TGI | Pipeline


class TokenCounter(typing.Protocol):
    """What shim needs of a ``tokenizers.Tokenizer``."""

    def encode_batch(self, inputs: list[str]) -> list[Any]: ...


class Endpoint:
    """One upstream base URL of a model, with its load and health."""

    __slots__ = (
        "_urls",
        "base",
        "cooled_until",
        "display",
        "failures",
        "host",
        "in_flight",
    )

    def __init__(self, base: str) -> None:
        self.base = base
        self._urls: dict[str, httpx.URL] = {}
        # The Host header, encoded once (requests are built without httpx's header merging).
        self.host = httpx.URL(base).netloc
        self.display = display_url(base)
        self.in_flight = 0
        self.failures = 0
        self.cooled_until = 0.0

    def url(self, path: str) -> httpx.URL:
        """``base + path``, parsed once (URL parsing is a measurable per-request cost)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.base + path)
        return url

    def healthy(self, now: float) -> bool:
        return self.cooled_until <= now

    def record_success(self) -> None:
        self.failures = 0
        self.cooled_until = 0.0

    def record_failure(self, threshold: int, cooldown: float) -> None:
        self.failures += 1
        if threshold > 0 and self.failures >= threshold:
            self.cooled_until = time.monotonic() + cooldown


def display_url(url: str) -> str:
    """Scheme, host and path only: no credentials or query string in logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


@dataclass(frozen=True, slots=True)
class Paths:
    """Path (appended to an endpoint base) of each operation; None = not offered."""

    generate: str | None = None
    generate_stream: str | None = None
    chat: str | None = None
    completions: str | None = None
    embeddings: str | None = None


class Route:
    """Everything needed to serve one public model name."""

    def __init__(self, name: str, model: ModelConfig, config: Config) -> None:
        self.name = name
        self.config = model
        self.task: Task = model.task
        self.protocol: Protocol = protocol_of(model)
        self.hf_model = model.hf_model
        self.serverless = not model.url
        hf = config.huggingface
        self.owned_by = model.owned_by or (
            model.hf_model.split("/")[0] if model.hf_model and "/" in model.hf_model else "shim"
        )
        bases, self.paths = _bases_and_paths(model, self.protocol, hf.base_url.rstrip("/"))
        self.endpoints = [Endpoint(base) for base in bases]
        self._rotation = itertools.cycle(range(len(self.endpoints)))
        token = model.token if model.token is not None else hf.token
        headers = {"content-type": "application/json", "accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        elif (userinfo := next(map(userinfo_of, urls_of(model)), None)) is not None:
            headers["authorization"] = _basic_auth(userinfo)
        self.headers = headers
        # Sent on a retry after a 503 "loading": makes HF hold the request until the model is up.
        loading = dict(headers)
        if self.serverless:
            loading["x-wait-for-model"] = "true"
        elif any(".endpoints.huggingface.cloud" in e.base for e in self.endpoints):
            loading["x-scale-up-timeout"] = str(int(model.wait_for_model))
        self.raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        self.loading_raw_headers = [(k.encode(), v.encode()) for k, v in loading.items()]
        # --- generation ---
        self.adapter: GenerationAdapter | None = None
        if self.protocol == "tgi":
            self.adapter = TGI()
        elif self.protocol == "pipeline" and model.task != "feature-extraction":
            self.adapter = Pipeline(full_text_flag=model.task == "text-generation")
        self.template: templates.ChatTemplate | None = None
        if model.chat_template is not None:
            try:
                self.template = templates.resolve(
                    model.chat_template,
                    base_dir=Path(config.source).parent,
                    bos_token=model.bos_token,
                    eos_token=model.eos_token,
                )
            except templates.TemplateError as exc:
                raise ConfigError(f"{config.source}: models.{name}.chat_template: {exc}") from None
        # Hub templates are fetched at startup for rendered text-generation without one.
        self.needs_hub_template = (
            self.template is None
            and self.task == "text-generation"
            and self.protocol in ("tgi", "pipeline")
            and model.hf_model is not None
        )
        self.default_max_tokens = model.max_tokens
        self.max_tokens_limit = model.max_tokens_limit
        self.max_messages = model.max_messages
        self.max_n = model.max_n
        self.max_prompts = model.max_prompts
        self.max_choices = model.max_choices
        # --- embeddings ---
        self.max_batch_size = model.max_batch_size or 32
        # The model's tokenizer (``tokenizers``), loaded at startup when available offline:
        # counts prompt tokens when the upstream reports none.
        self.tokenizer: TokenCounter | None = None
        # --- timeouts and resilience ---
        self.timeout = model.timeout
        self.first_token_timeout = model.first_token_timeout
        self.idle_timeout = model.idle_timeout
        # httpx.Request extensions, built once. Streams have no total limit and no transport
        # read timeout: OpenStream's watchdog bounds the first token and each later gap.
        connect = model.connect_timeout
        self.request_extensions = {
            "timeout": httpx.Timeout(model.timeout, connect=connect, pool=connect).as_dict()
        }
        self.stream_extensions = {
            "timeout": httpx.Timeout(None, connect=connect, pool=connect).as_dict()
        }
        self.retries = model.retries
        self.wait_for_model = model.wait_for_model
        self.cooldown = model.cooldown
        self.cooldown_after = model.cooldown_after
        self.fallbacks = tuple(model.fallbacks)
        self._waking: asyncio.Event | None = None
        self._limit = asyncio.Semaphore(model.max_concurrency) if model.max_concurrency else None
        self._queued = 0
        self.max_queue = model.max_queue

    @property
    def stops(self) -> tuple[str, ...]:
        extra = tuple(self.config.stop)
        return (self.template.stop if self.template else ()) + extra

    def describe(self) -> str:
        urls = ", ".join(e.display for e in self.endpoints)
        return f"{self.name} -> {self.task}, {self.protocol}, {urls}"

    def pick_endpoint(self, avoid: set[Endpoint] | frozenset[Endpoint] = frozenset()) -> Endpoint:
        """Least in-flight among healthy endpoints not in ``avoid`` (round robin on ties); if
        none is left, the one whose cooldown ends first (a probe)."""
        endpoints = self.endpoints
        if len(endpoints) == 1:
            return endpoints[0]
        now = time.monotonic()
        start = next(self._rotation)
        ordered = endpoints[start:] + endpoints[:start]
        healthy = [e for e in ordered if e.healthy(now) and e not in avoid]
        if not healthy:
            healthy = [e for e in ordered if e not in avoid] or ordered
            return min(healthy, key=lambda e: e.cooled_until)
        return min(healthy, key=lambda e: e.in_flight)

    # --- waking a loading model (one request polls; the others wait for it) ------------------

    @property
    def waking(self) -> bool:
        return self._waking is not None

    def begin_waking(self) -> bool:
        self._waking = asyncio.Event()
        return True

    def end_waking(self) -> None:
        event, self._waking = self._waking, None
        if event is not None:
            event.set()

    async def wait_awake(self, remaining: float) -> None:
        event = self._waking
        if event is None or remaining <= 0:
            return
        try:
            async with asyncio.timeout(remaining):
                await event.wait()
        except TimeoutError:
            pass

    def acquire_slot(self) -> Slot:
        """A concurrency slot (``max_concurrency``) to wait for, or 429 when the wait queue is
        full."""
        if self._limit is None:
            return NO_SLOT
        if self._limit.locked() and self._queued >= self.max_queue:
            raise RateLimitError(
                f"Too many concurrent requests for `{self.name}`; try again shortly.",
                retry_after=1.0,
            )
        return Slot(self)


class Slot:
    """One request's place under its model's ``max_concurrency``, released exactly once: when
    the answer is built, or for a stream when its reply ends (``api.api_route``)."""

    __slots__ = ("_held", "_route")

    def __init__(self, route: Route | None) -> None:
        self._route = route
        self._held = False

    async def acquire(self) -> None:
        route = self._route
        if route is None or route._limit is None:
            return
        route._queued += 1
        try:
            await route._limit.acquire()
        finally:
            route._queued -= 1
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            assert self._route is not None and self._route._limit is not None
            self._route._limit.release()


#: The slot of a model without ``max_concurrency``: nothing to wait for or release.
NO_SLOT = Slot(None)


def _bases_and_paths(
    model: ModelConfig, protocol: Protocol, base_url: str
) -> tuple[list[str], Paths]:
    # Credentials in a URL were made an Authorization header: never part of the URL sent.
    urls = [without_userinfo(u).rstrip("/") for u in urls_of(model)]
    hf_model = quote(model.hf_model or "", safe="/")
    if protocol == "openai":
        if not urls:
            # The HF router's OpenAI API serves chat only (legacy completions go as chat).
            return [base_url + "/v1"], Paths(chat="/chat/completions")
        bases = [_strip_v1(u) + "/v1" for u in urls]
        return bases, Paths(
            chat="/chat/completions", completions="/completions", embeddings="/embeddings"
        )
    if protocol == "tgi":
        return urls, Paths(generate="/generate", generate_stream="/generate_stream")
    if protocol == "tei":
        return urls, Paths(embeddings="/embed")
    # pipeline
    if model.task == "feature-extraction":
        serverless = f"{base_url}/hf-inference/models/{hf_model}/pipeline/feature-extraction"
        return urls or [serverless], Paths(embeddings="")
    return urls or [f"{base_url}/hf-inference/models/{hf_model}"], Paths(generate="")


def _basic_auth(userinfo: str) -> str:
    """RFC 7617 Basic credentials from a URL's percent-encoded ``user:password``."""
    user, _, password = userinfo.partition(":")
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _strip_v1(url: str) -> str:
    return url[: -len("/v1")] if url.endswith("/v1") else url


class Router:
    """All routes of one config; replaced whole (atomically) on reload."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.routes: dict[str, Route] = {
            name: Route(name, model, config) for name, model in config.models.items()
        }
        created = int(time.time())
        self.models = {
            name: common.Model(id=name, created=created, owned_by=route.owned_by)
            for name, route in self.routes.items()
        }
        self.models_body = msgspec.json.encode(common.ModelList(data=list(self.models.values())))

    def get(self, name: str) -> Route:
        route = self.routes.get(name)
        if route is None:
            raise ModelNotFoundError(name)
        return route

    def for_task(self, name: str, *tasks: Task, endpoint: str) -> Route:
        route = self.get(name)
        if route.task not in tasks:
            raise InvalidRequestError(
                f"The model `{name}` serves task `{route.task}`; {endpoint} needs "
                f"{' or '.join(f'`{t}`' for t in tasks)}.",
                param="model",
                code="model_task_mismatch",
            )
        return route
