"""Routing resolved once per config: public model name → a frozen ``Route`` (``shim.route``),
so the request path does a single dict lookup. ``build_route`` reads one model's config (URLs,
credentials, adapter, template, tokenizer, timeouts); ``Router`` holds a config's routes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import msgspec

from shim import templates, token_ids, urls
from shim.adapters import feature_extraction, text_generation, text_ranking
from shim.config import (
    GENERATION_TASKS,
    Config,
    ConfigError,
    ModelConfig,
    Protocol,
    Task,
    cache_dir,
    protocol_of,
    urls_of,
)
from shim.errors import InvalidRequestError, ModelNotFoundError
from shim.openai import common
from shim.providers import HF_INFERENCE, POLICIES, ProviderKey
from shim.route import HubRepo, RawHeaders, Route


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
