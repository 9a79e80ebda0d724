"""What shim learns from upstreams and the Hub, never in the request path: chat templates of
Hub models (cached on disk), TEI batch limits from ``/info``, tokenizers for token counts,
Inference Providers' ids for models (cached on disk).

Kept by what it depends on (a ``HubRepo``, a URL, a tokenizer file), so a reload keeps all of
it for unchanged models and learns, in the background, only what a new or changed model needs.
The request path reads it at one dict lookup.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from shim import hf, providers, templates
from shim.adapters import FeatureExtraction
from shim.adapters import feature_extraction as fx
from shim.errors import InvalidRequestError, ShimError
from shim.live import Active
from shim.providers import ProviderKey
from shim.redact import Scrubber
from shim.route import HubRepo, Route
from shim.routing import Router
from shim.upstream.client import Client

log = logging.getLogger("shim.discovery")
HUB_TIMEOUT = 10.0
INFO_TIMEOUT = 3.0
#: Inputs per upstream embeddings call when neither the config nor TEI says.
DEFAULT_BATCH_SIZE = 32
_info = msgspec.json.Decoder(hf.TEIInfo)


class TokenCounter(typing.Protocol):
    """What shim needs of a ``tokenizers.Tokenizer``."""

    def encode_batch(self, input: list[str], *, add_special_tokens: bool = True) -> list[Any]: ...


class Discovery:
    def __init__(self, client: Client) -> None:
        self.client = client
        # What may be logged of an upstream's text (the active config's).
        self.scrubber = Scrubber()
        self.templates: dict[HubRepo, templates.ChatTemplate] = {}
        self.batch_sizes: dict[str, int] = {}
        self.tokenizers: dict[HubRepo | Path, TokenCounter] = {}
        # A provider's id for a model, or the reason it serves none (absent: Hub unreachable).
        self.providers: dict[ProviderKey, providers.Resolution] = {}
        self._provider_embedders: dict[str, fx.OpenAIStyle] = {}
        self._learning: set[object] = set()
        self._background: set[asyncio.Task[None]] = set()

    # --- the request path ----------------------------------------------------------------------

    def template(self, route: Route) -> templates.ChatTemplate | None:
        repo = route.hub_template
        return route.template if repo is None else self.templates.get(repo)

    def batch_size(self, route: Route) -> int:
        if route.max_batch_size is not None:
            return route.max_batch_size
        url = route.info_url
        return DEFAULT_BATCH_SIZE if url is None else self.batch_sizes.get(url, DEFAULT_BATCH_SIZE)

    def tokenizer(self, route: Route) -> TokenCounter | None:
        return None if route.tokenizer is None else self.tokenizers.get(route.tokenizer)

    def provider_id(self, route: Route) -> str | None:
        """The provider's id for the route's model (None: no lookup, or the Hub was not
        reachable, and the Hub id is sent); a 400 when the provider serves no such model."""
        key = route.provider_key
        resolution = None if key is None else self.providers.get(key)
        if resolution is None:
            return None
        if resolution.provider_id is None:
            raise InvalidRequestError(
                f"The model `{route.name}` is not available: the provider `{route.provider}` "
                f"does not serve {route.hf_model} ({resolution.detail}).",
                param="model",
                code="model_not_supported_by_provider",
            )
        return resolution.provider_id

    def embedder(self, route: Route) -> FeatureExtraction | None:
        """The route's embeddings adapter: through a provider, with the provider's model id."""
        provider_id = self.provider_id(route)
        if provider_id is None:
            return route.embedder
        adapter = self._provider_embedders.get(provider_id)
        if adapter is None:  # one per id, made once
            adapter = self._provider_embedders[provider_id] = fx.OpenAIStyle(
                upstream_model=provider_id
            )
        return adapter

    # --- learning ------------------------------------------------------------------------------

    async def learn(self, active: Active) -> None:
        """At startup: what must be ready before serving (chat templates, TEI batch limits);
        what merely improves answers (tokenizers) goes on in the background."""
        self.scrubber = active.scrubber
        await asyncio.gather(*self._needed(active.router))
        self._spawn(self._wanted(active.router))

    def relearn(self, active: Active) -> None:
        """After a reload: whatever is not known yet, in the background."""
        self.scrubber = active.scrubber
        self._spawn([*self._needed(active.router), *self._wanted(active.router)])

    def close(self) -> None:
        for task in self._background:
            task.cancel()

    def _needed(self, router: Router) -> list[Coroutine[Any, Any, None]]:
        work = []
        for r in router.routes.values():
            if r.hub_template is not None and r.hub_template not in self.templates:
                work.append(self._once(r.hub_template, partial(self._template, r, r.hub_template)))
            if r.info_url is not None and r.info_url not in self.batch_sizes:
                work.append(self._once(r.info_url, partial(self._tei_info, r, r.info_url)))
            if r.provider_key is not None and r.provider_key not in self.providers:
                work.append(self._once(r.provider_key, partial(self._provider, r, r.provider_key)))
        return work

    def _wanted(self, router: Router) -> list[Coroutine[Any, Any, None]]:
        return [
            self._once(r.tokenizer, partial(self._tokenizer, r, r.tokenizer))
            for r in router.routes.values()
            if r.tokenizer is not None and r.tokenizer not in self.tokenizers
        ]

    def _spawn(self, work: Iterable[Coroutine[Any, Any, None]]) -> None:
        for coroutine in work:
            task = asyncio.create_task(coroutine)
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _once(self, key: object, learn: Callable[[], Awaitable[None]]) -> None:
        """Learn ``key`` unless it is being learned already (two models, one repo)."""
        if key in self._learning:
            return
        self._learning.add(key)
        try:
            await learn()
        finally:
            self._learning.discard(key)

    async def _hub_get(self, route: Route, repo: HubRepo, filename: str) -> bytes | None:
        url = f"{repo.hub_url}/{repo.hf_model}/resolve/main/{filename}"
        # With the model's token (gated repos), and nothing else of the route's headers.
        headers = {k: v for k, v in route.headers.items() if k == "authorization"}
        try:
            response = await self.client.get(url, headers=headers, limit=HUB_TIMEOUT)
        except ShimError as exc:
            reason = self.scrubber(exc.message)
            log.warning("%s: cannot reach the Hub for %s: %s", route.name, filename, reason)
            return None
        if response.status_code != 200:
            if response.status_code != 404:
                log.warning(
                    "%s: Hub answered %d for %s", route.name, response.status_code, filename
                )
            return None
        return response.content

    async def _template(self, route: Route, repo: HubRepo) -> None:
        """The model's chat template from its ``tokenizer_config.json`` (or
        ``chat_template.jinja``), fetched with the model's token, cached on disk."""
        path = templates.cache_path(Path(repo.cache_dir), repo.hf_model)
        cached: templates.CachedTemplate | None = None
        try:
            cached = msgspec.json.decode(path.read_bytes(), type=templates.CachedTemplate)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            config = await self._hub_get(route, repo, "tokenizer_config.json")
            if config is not None:
                jinja = await self._hub_get(route, repo, "chat_template.jinja")
                cached = templates.CachedTemplate(
                    tokenizer_config=config.decode("utf-8", "replace"),
                    jinja=jinja.decode("utf-8", "replace") if jinja is not None else None,
                )
                _write(path, msgspec.json.encode(cached), f"{route.name}: chat template")
        if cached is None:
            log.warning(
                "%s: no chat template (chat answers 400 until one is configured)", route.name
            )
            return
        try:
            template = templates.from_tokenizer_config(
                cached.tokenizer_config.encode(), jinja=cached.jinja, origin=f"hub:{repo.hf_model}"
            )
        except templates.TemplateError as exc:
            log.warning("%s: %s", route.name, self.scrubber(str(exc)))
            return
        if template is None:
            log.warning("%s: %s has no chat template", route.name, repo.hf_model)
            return
        self.templates[repo] = template
        tools, reasoning = route.parsers(template)
        log.info(
            "%s: chat template from the Hub (%s); tools: %s, reasoning: %s",
            route.name, repo.hf_model, tools, reasoning,
        )  # fmt: skip

    async def _provider(self, route: Route, key: ProviderKey) -> None:
        """The provider's id for the route's model (``shim.providers.learn``)."""
        headers = {k: v for k, v in route.headers.items() if k == "authorization"}
        resolution = await providers.learn(self.client, key, headers=headers, name=route.name)
        if resolution is not None:
            self.providers[key] = resolution

    async def _tei_info(self, route: Route, url: str) -> None:
        """TEI's ``max_client_batch_size`` (the route configures no ``max_batch_size``)."""
        try:
            response = await self.client.get(url, headers=route.headers, limit=INFO_TIMEOUT)
            info = _info.decode(response.content)
        except (ShimError, msgspec.DecodeError, msgspec.ValidationError):
            log.info("%s: TEI /info not readable; batches of %d", route.name, DEFAULT_BATCH_SIZE)
            return
        if response.status_code == 200 and info.max_client_batch_size:
            self.batch_sizes[url] = info.max_client_batch_size
            log.info("%s: TEI max_client_batch_size = %d", route.name, info.max_client_batch_size)

    async def _tokenizer(self, route: Route, source: HubRepo | Path) -> None:
        """The model's ``tokenizer.json`` (a file, or the Hub's cached on disk), loaded with the
        ``tokenizers`` package when it is installed; without either, token counts are estimated."""
        try:
            from tokenizers import Tokenizer
        except ImportError:
            level = logging.INFO if route.config.tokenizer == "auto" else logging.WARNING
            log.log(level, "%s: no tokenizers package; token counts are estimated", route.name)
            return
        text = await self._tokenizer_text(route, source)
        if text is None:
            log.info("%s: no tokenizer.json; token counts are estimated", route.name)
            return
        try:
            self.tokenizers[source] = Tokenizer.from_str(text)
        except Exception as exc:  # the tokenizers library raises plain Exceptions
            log.warning("%s: unusable tokenizer.json: %s", route.name, type(exc).__name__)
            return
        log.info("%s: tokens counted with the model's tokenizer", route.name)

    async def _tokenizer_text(self, route: Route, source: HubRepo | Path) -> str | None:
        if isinstance(source, Path):
            try:
                return _read(source)
            except OSError as exc:
                log.warning(
                    "%s: cannot read the tokenizer %s: %s", route.name, source, exc.strerror
                )
                return None
        path = Path(source.cache_dir) / (source.hf_model.replace("/", "--") + "--tokenizer.json")
        try:
            return _read(path)
        except OSError:
            pass
        data = await self._hub_get(route, source, "tokenizer.json")
        if data is None:
            return None
        _write(path, data, f"{route.name}: tokenizer")
        return data.decode("utf-8", "replace")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _write(path: Path, data: bytes, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        log.warning("%s: cannot cache it: %s", what, exc)
