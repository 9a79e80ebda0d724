"""The frozen ``Route``: everything needed to serve one public model name (URLs, headers,
adapter, template, timeouts, limits), built once per config by ``shim.routing``.

Routes are data: nothing writes to them after they are built. What a model's upstreams are
doing (health, load, a wake-up) is live state in ``shim.live``; what startup learns about them
(TEI batch limits, tokenizers, Hub templates) is in ``shim.discovery``, keyed by the
``HubRepo`` and URLs a route names.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from shim import templates, urls
from shim.adapters import FeatureExtraction, TextGeneration, TextRanking
from shim.adapters._reasoning import resolve_reasoning_parser
from shim.adapters._tools import resolve_tool_parser
from shim.config import ModelConfig, Protocol, ReasoningParser, Task, TokenIds, ToolParser
from shim.providers import ProviderKey

RawHeaders = tuple[tuple[bytes, bytes], ...]
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
