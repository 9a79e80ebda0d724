"""The config's schema: what a TOML config may say, typed (read and checked by
``shim.loader``), and the facts derived from a model's config that more than one part needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

Task = Literal["text-generation", "text2text-generation", "feature-extraction", "text-ranking"]
#: The tasks whose models generate text (chat, completions, the Responses API).
GENERATION_TASKS: tuple[Task, ...] = ("text-generation", "text2text-generation")
Protocol = Literal["tgi", "pipeline", "openai", "tei"]
Pooling = Literal["mean", "cls", "none"]
# What token-id embedding inputs are: cl100k_base ids (decoded to text: what LangChain and the
# openai SDK tokenize with), the model's own vocabulary (passed through), or refused.
TokenIds = Literal["cl100k", "model", "reject"]
#: How tool calls and reasoning are read from a rendered model's text (``shim.adapters._tools``,
#: ``_reasoning``); "auto" picks from the chat template.
ToolParser = Literal["hermes", "llama3_json", "mistral", "json", "none"]
ReasoningParser = Literal["think", "none"]

#: Which protocols each task may use; the first is the default for a ``url``.
PROTOCOLS_BY_TASK: dict[str, tuple[Protocol, ...]] = {
    "text-generation": ("tgi", "pipeline", "openai"),
    "text2text-generation": ("pipeline", "tgi", "openai"),
    "feature-extraction": ("tei", "pipeline", "openai"),
    "text-ranking": ("tei", "pipeline", "openai"),
}

DEFAULT_BASE_URL = "https://router.huggingface.co"
DEFAULT_HUB_URL = "https://huggingface.co"


class ConfigError(Exception):
    """A config that cannot be served; ``str()`` is the one line to show."""


class _Base(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """Config policy: unknown keys are errors (a typo must not silently change behaviour)."""


class KeyConfig(_Base):
    """A client key (``[[server.keys]]``): a name for logs, an optional model allow-list, limits."""

    key: str
    name: str
    models: list[str] | None = None
    rpm: int | None = msgspec.field(default=None)
    tpm: int | None = None


class ServerConfig(_Base):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # Bare client keys; each may be used for every model.
    api_keys: list[str] = msgspec.field(default_factory=list)
    keys: list[KeyConfig] = msgspec.field(default_factory=list)
    max_body_bytes: int = 10 * 1024 * 1024
    cors_origins: list[str] = msgspec.field(default_factory=list)
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Sensitive: prompt and answer text in the per-request log line.
    log_bodies: bool = False
    # false: no /metrics and nothing recorded (to measure what metrics cost).
    metrics: bool = True
    metrics_auth: bool = False
    # Adds a `key` label (the key's name, never the key) to shim_requests_total.
    metrics_key_label: bool = False
    # Seconds in-flight requests get to finish after SIGTERM.
    drain_timeout: float = 30.0
    # Seconds a connection may take to send a request's headers (slowloris); then it is closed.
    header_timeout: float = 10.0


class HuggingFaceConfig(_Base):
    token: str | None = None
    base_url: str = DEFAULT_BASE_URL
    hub_url: str = DEFAULT_HUB_URL
    # Where chat templates fetched from the Hub are cached (default: ~/.cache/shim/templates).
    cache_dir: str | None = None


class ModelConfig(_Base):
    task: Task
    hf_model: str | None = None
    url: str | list[str] | None = None
    protocol: Protocol | None = None
    token: str | None = None
    owned_by: str | None = None
    # --- generation ---
    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    # How tool calls and reasoning appear in the model's text ("auto": from the chat template).
    tool_parser: Literal["auto", ToolParser] = "auto"
    reasoning_parser: Literal["auto", ReasoningParser] = "auto"
    # Extra stop strings always applied (e.g. an end-of-turn marker the template does not declare).
    stop: list[str] = msgspec.field(default_factory=list)
    # Default max_tokens when the client sends none (pipelines otherwise stop at 20 tokens).
    max_tokens: int | None = None
    # Upper bound on max_tokens a client may ask for (400 above it).
    max_tokens_limit: int | None = None
    max_messages: int = 1000
    max_n: int = 8
    # Prompts in one /v1/completions request (`prompt` as a list).
    max_prompts: int = 64
    # Generations one request may ask for: prompts x `n` (or `best_of`). Each is an upstream
    # call on rendered protocols, so this bounds the fan-out of a single request.
    max_choices: int = 128
    # --- embeddings ---
    pooling: Pooling = "mean"
    normalize: bool = True
    max_batch_size: int | None = None
    truncate: bool | None = None
    dimensions: bool = False
    max_inputs: int = 2048
    # Serverless only: the Inference Provider that serves the model behind the HF router
    # ("together", "nebius", ...; for chat also the policies "fastest" and "cheapest");
    # unset or "hf-inference": the router's default (chat) and hf-inference pipelines.
    provider: str | None = None
    # Count tokens with the model's tokenizer (needs the `tokenizers` package) when the
    # upstream reports none: a `tokenizer.json` path, "hub" (fetched at startup), "none"
    # (the estimate), or "auto": the Hub's where the protocol reports no counts (pipelines).
    tokenizer: str = "auto"
    token_ids: TokenIds = "cl100k"
    # --- rerank (also max_batch_size, max_inputs, truncate) ---
    # TEI's raw_scores: the model's logits instead of sigmoid-normalised scores.
    raw_scores: bool = False
    # --- timeouts (seconds) ---
    connect_timeout: float = 10.0
    timeout: float = 300.0
    first_token_timeout: float = 300.0
    idle_timeout: float = 120.0
    # --- resilience ---
    retries: int = 2
    wait_for_model: float = 120.0
    cooldown: float = 30.0
    cooldown_after: int = 3
    fallbacks: list[str] = msgspec.field(default_factory=list)
    max_concurrency: int | None = None
    max_queue: int = 256


class StateConfig(_Base):
    """Where stored responses (``/v1/responses``) and, with Redis, the rate windows live."""

    backend: Literal["sqlite", "memory", "redis"] = "sqlite"
    # sqlite: the database file (default $XDG_DATA_HOME/shim/state.db, set at load).
    path: str | None = None
    # redis: redis://, rediss:// or unix:// URL.
    url: str | None = None
    key_prefix: str = "shim:"
    # Seconds a stored response is kept (OpenAI keeps them 30 days).
    response_ttl: float = 30 * 86400.0


class Config(_Base):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    huggingface: HuggingFaceConfig = msgspec.field(default_factory=HuggingFaceConfig)
    state: StateConfig = msgspec.field(default_factory=StateConfig)
    models: dict[str, ModelConfig] = msgspec.field(default_factory=dict)
    #: The file this came from (not a TOML key); used for relative paths and messages.
    source: str = "<config>"


def cache_dir(huggingface: HuggingFaceConfig) -> str:
    """Where files fetched from the Hub are cached: ``cache_dir``, else the XDG cache."""
    if huggingface.cache_dir:
        return str(Path(huggingface.cache_dir).expanduser())
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "shim" / "templates")


def urls_of(model: ModelConfig) -> list[str]:
    if model.url is None:
        return []
    return [model.url] if isinstance(model.url, str) else list(model.url)


def protocol_of(model: ModelConfig) -> Protocol:
    """The protocol a model uses: explicit, else the task's default for its kind of upstream."""
    if model.protocol is not None:
        return model.protocol
    if model.url:
        return PROTOCOLS_BY_TASK[model.task][0]
    # Serverless: chat models live on the router's OpenAI API; the rest on hf-inference
    # pipelines, or a provider's OpenAI-style routes.
    if model.task == "text-generation" or model.provider not in (None, "hf-inference"):
        return "openai"
    return "pipeline"
