"""Routing resolved once per config: public model name → a frozen ``Route`` (URLs, headers,
adapter, template, timeouts, limits), so the request path does a single dict lookup.

Routes are data: nothing writes to them after they are built. What a model's upstreams are
doing (health, load, a wake-up) is live state in ``shim.live``; what startup learns about them
(TEI batch limits, tokenizers, Hub templates) is in ``shim.discovery``, keyed by the
``HubRepo`` and URLs a route names.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import httpx
import msgspec

from shim import templates, token_ids, urls
from shim.adapters import (
    FeatureExtraction,
    TextGeneration,
    TextRanking,
    feature_extraction,
    text_generation,
    text_ranking,
)
from shim.adapters._reasoning import resolve_reasoning_parser
from shim.adapters._tools import resolve_tool_parser
from shim.config import (
    Config,
    ConfigError,
    ModelConfig,
    Protocol,
    ReasoningParser,
    Task,
    TokenIds,
    ToolParser,
    cache_dir,
    protocol_of,
    urls_of,
)
from shim.errors import InvalidRequestError, ModelNotFoundError
from shim.openai import common
from shim.providers import HF_INFERENCE, POLICIES, ProviderKey

RawHeaders = tuple[tuple[bytes, bytes], ...]
GENERATION_TASKS: tuple[Task, ...] = ("text-generation", "text2text-generation")
_FROM_HUB = "auto (from the Hub template)"


class HubRepo(NamedTuple):
    """A model's repo on the Hub, as what is learned from it is keyed (and cached on disk)."""

    hub_url: str
    hf_model: str
    cache_dir: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Everything needed to serve one public model name."""

    name: str
    config: ModelConfig
    task: Task
    protocol: Protocol
    hf_model: str | None
    serverless: bool
    # The Inference Provider (serverless only), and what to look up about it at startup (its
    # id for the model; none for hf-inference and the router's policies).
    provider: str | None
    provider_key: ProviderKey | None
    # `model` as OpenAI-style upstreams get it (chat through a provider: `hf_model:provider`).
    upstream_model: str
    owned_by: str
    upstreams: tuple[urls.Upstream, ...]
    paths: urls.Paths
    # For plain GETs (TEI /info, health probes); POSTs use the ready-made raw forms.
    headers: Mapping[str, str]
    raw_headers: RawHeaders
    # Sent on a retry after a 503 "loading": makes HF hold the request until the model is up.
    loading_raw_headers: RawHeaders
    # --- generation ---
    generator: TextGeneration | None
    # The configured template; without one, a Hub template learned for ``hub_template``.
    template: templates.ChatTemplate | None
    hub_template: HubRepo | None
    max_messages: int
    max_n: int
    max_prompts: int
    max_choices: int
    default_max_tokens: int | None
    max_tokens_limit: int | None
    # --- embeddings and rerank ---
    embedder: FeatureExtraction | None
    ranker: TextRanking | None
    # The configured batch size; without one, TEI's, learned from ``info_url``.
    max_batch_size: int | None
    info_url: str | None
    # A tokenizer.json file, or a Hub repo's: counts the tokens the upstream reports none of.
    tokenizer: HubRepo | Path | None
    token_ids: TokenIds
    # --- timeouts and resilience ---
    timeout: float
    first_token_timeout: float
    idle_timeout: float
    # httpx.Request extensions, built once. Streams have no total limit and no transport
    # read timeout: OpenStream's watchdog bounds the first token and each later gap.
    request_extensions: dict[str, Any]
    stream_extensions: dict[str, Any]
    retries: int
    wait_for_model: float
    cooldown: float
    cooldown_after: int
    fallbacks: tuple[str, ...]

    def parsers(
        self, template: templates.ChatTemplate | None = None
    ) -> tuple[ToolParser, ReasoningParser]:
        """How tool calls and reasoning are read from this model's text: as configured, or
        for "auto" from the chat template (``template``: a Hub one, once learned)."""
        template = template or self.template
        source = template.source if template is not None else None
        return _parsers(self.config.tool_parser, self.config.reasoning_parser, source)

    @property
    def tool_parser(self) -> ToolParser:
        return self.parsers()[0]

    @property
    def reasoning_parser(self) -> ReasoningParser:
        return self.parsers()[1]

    def describe(
        self, template: templates.ChatTemplate | None = None, *, provider_id: str | None = None
    ) -> str:
        """One line for the log and ``shim check`` (``template``: a Hub one, once learned;
        ``provider_id``: the provider's id for the model, once resolved)."""
        line = f"{self.name} -> {self.task}, {self.protocol}, "
        line += ", ".join(u.display for u in self.upstreams)
        if self.provider is not None:
            parts = [self.upstream_model] if self.task == "text-generation" else []
            if self.provider_key is not None:
                parts.append(provider_id or "resolved at startup")
            line += f", provider: {self.provider}" + (f" ({'; '.join(parts)})" if parts else "")
        if self.generator is None:
            return line  # the upstream reads tool calls itself (openai), or there are none
        if self.hub_template is not None and template is None:
            tools = self.config.tool_parser.replace("auto", _FROM_HUB)
            reasoning = self.config.reasoning_parser.replace("auto", _FROM_HUB)
            return f"{line}, tools: {tools}, reasoning: {reasoning}"
        tools, reasoning = self.parsers(template)
        return f"{line}, tools: {tools}, reasoning: {reasoning}"


@functools.lru_cache(maxsize=256)
def _parsers(
    tools: Literal["auto", ToolParser],
    reasoning: Literal["auto", ReasoningParser],
    source: str | None,
) -> tuple[ToolParser, ReasoningParser]:
    # Asked on every chat request: reading a template source for markers is done once per
    # (settings, template), as at config load (a Hub template is learned later).
    return resolve_tool_parser(tools, source), resolve_reasoning_parser(reasoning, source)


def _raw(headers: Mapping[str, str]) -> RawHeaders:
    return tuple((k.encode(), v.encode()) for k, v in headers.items())


def _template(name: str, model: ModelConfig, config: Config) -> templates.ChatTemplate | None:
    if model.chat_template is None:
        return None
    try:
        return templates.resolve(
            model.chat_template,
            base_dir=Path(config.source).parent,
            bos_token=model.bos_token,
            eos_token=model.eos_token,
        )
    except templates.TemplateError as exc:
        raise ConfigError(f"{config.source}: models.{name}.chat_template: {exc}") from None


def _tokenizer(
    model: ModelConfig, config: Config, protocol: Protocol, repo: HubRepo | None
) -> HubRepo | Path | None:
    """Where token counts come from when the upstream reports none. ``auto`` fetches the Hub's
    tokenizer only for pipelines (TGI, TEI and OpenAI-style servers count themselves, and a
    tokenizer.json is megabytes); rerank counts are always estimated."""
    spec = model.tokenizer
    if spec == "none" or model.task == "text-ranking":
        return None
    if spec == "auto":
        return repo if protocol == "pipeline" else None
    if spec == "hub":
        return repo
    path = Path(spec).expanduser()
    return path if path.is_absolute() else Path(config.source).parent / path


def _load_cl100k(name: str, config: Config) -> None:
    """cl100k_base, loaded once per process at config load, never by a request."""
    try:
        token_ids.cl100k()
    except token_ids.VocabularyError as exc:
        raise ConfigError(f"{config.source}: models.{name}.token_ids: {exc}") from None


def build_route(name: str, model: ModelConfig, config: Config) -> Route:
    hf = config.huggingface
    protocol = protocol_of(model)
    bases, paths = urls.bases_and_paths(model, protocol, hf.base_url.rstrip("/"))
    token = model.token if model.token is not None else hf.token
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    elif (userinfo := next(map(urls.userinfo_of, urls_of(model)), None)) is not None:
        headers["authorization"] = urls.basic_auth(userinfo)
    loading = dict(headers)
    if not model.url:
        loading["x-wait-for-model"] = "true"
    elif any(".endpoints.huggingface.cloud" in base for base in bases):
        loading["x-scale-up-timeout"] = str(int(model.wait_for_model))
    template = _template(name, model, config)
    repo = (
        HubRepo(hf.hub_url.rstrip("/"), model.hf_model, cache_dir(hf)) if model.hf_model else None
    )
    generator = embedder = ranker = None
    if model.task in GENERATION_TASKS:
        generator = text_generation.for_protocol(model.task, protocol)
    elif model.task == "feature-extraction":
        embedder = feature_extraction.for_protocol(
            protocol, truncate=model.truncate, normalize=model.normalize,
            pooling=model.pooling, upstream_model=model.hf_model or "tei",
        )  # fmt: skip
        if model.token_ids == "cl100k":
            _load_cl100k(name, config)
    else:
        ranker = text_ranking.for_protocol(
            protocol, truncate=model.truncate, raw_scores=model.raw_scores,
            upstream_model=model.hf_model or name,
        )  # fmt: skip
    connect = model.connect_timeout
    provider_key = None
    if model.provider not in (None, HF_INFERENCE, *POLICIES) and model.hf_model:
        provider_key = ProviderKey(
            hf.hub_url.rstrip("/"), model.hf_model, model.provider, model.task, cache_dir(hf)
        )
    upstream_model = model.hf_model or "tgi"
    if model.provider is not None and model.task == "text-generation":
        upstream_model = f"{model.hf_model}:{model.provider}"
    return Route(
        name=name,
        config=model,
        task=model.task,
        protocol=protocol,
        hf_model=model.hf_model,
        serverless=not model.url,
        provider=model.provider,
        provider_key=provider_key,
        upstream_model=upstream_model,
        owned_by=model.owned_by
        or (model.hf_model.split("/")[0] if model.hf_model and "/" in model.hf_model else "shim"),
        upstreams=tuple(urls.Upstream.of(base, paths) for base in bases),
        paths=paths,
        headers=headers,
        raw_headers=_raw(headers),
        loading_raw_headers=_raw(loading),
        generator=generator,
        template=template,
        # Hub templates are learned for rendered text-generation without one configured.
        hub_template=repo
        if template is None and model.task == "text-generation" and generator is not None
        else None,
        max_messages=model.max_messages,
        max_n=model.max_n,
        max_prompts=model.max_prompts,
        max_choices=model.max_choices,
        default_max_tokens=model.max_tokens,
        max_tokens_limit=model.max_tokens_limit,
        embedder=embedder,
        ranker=ranker,
        max_batch_size=model.max_batch_size,
        info_url=bases[0] + "/info" if protocol == "tei" and model.max_batch_size is None else None,
        tokenizer=_tokenizer(model, config, protocol, repo),
        token_ids=model.token_ids,
        timeout=model.timeout,
        first_token_timeout=model.first_token_timeout,
        idle_timeout=model.idle_timeout,
        request_extensions={
            "timeout": httpx.Timeout(model.timeout, connect=connect, pool=connect).as_dict()
        },
        stream_extensions={"timeout": httpx.Timeout(None, connect=connect, pool=connect).as_dict()},
        retries=model.retries,
        wait_for_model=model.wait_for_model,
        cooldown=model.cooldown,
        cooldown_after=model.cooldown_after,
        fallbacks=tuple(model.fallbacks),
    )


class Router:
    """All routes of one config, built once; a reload builds a new one."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.routes: dict[str, Route] = {
            name: build_route(name, model, config) for name, model in config.models.items()
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

    def for_task(self, name: str, tasks: tuple[Task, ...], *, path: str) -> Route:
        """The route of ``name``, which must serve one of ``tasks`` (the API route at ``path``)."""
        route = self.get(name)
        if route.task not in tasks:
            raise InvalidRequestError(
                f"The model `{name}` serves task `{route.task}`; {path} needs "
                f"{' or '.join(f'`{t}`' for t in tasks)}.",
                param="model",
                code="model_task_mismatch",
            )
        return route
