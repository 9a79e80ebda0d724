"""The TOML config: its schema, ``${VAR}`` expansion and validation.

The only module that reads environment variables. ``load_config`` either returns a complete,
valid ``Config`` or raises ``ConfigError`` with one line naming the file, the key and the fault.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec

Task = Literal["text-generation", "text2text-generation", "feature-extraction"]
Protocol = Literal["tgi", "pipeline", "openai", "tei"]
Pooling = Literal["mean", "cls", "none"]

#: Which protocols each task may use; the first is the default for a ``url``.
PROTOCOLS_BY_TASK: dict[str, tuple[Protocol, ...]] = {
    "text-generation": ("tgi", "pipeline", "openai"),
    "text2text-generation": ("pipeline", "tgi", "openai"),
    "feature-extraction": ("tei", "pipeline", "openai"),
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
    # Count prompt tokens with the model's tokenizer (needs the `tokenizers` package) when the
    # upstream reports none: a `tokenizer.json` path, or "hub" to fetch it at startup.
    tokenizer: str | None = None
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


class Config(_Base):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    huggingface: HuggingFaceConfig = msgspec.field(default_factory=HuggingFaceConfig)
    models: dict[str, ModelConfig] = msgspec.field(default_factory=dict)
    #: The file this came from (not a TOML key); used for relative paths and messages.
    source: str = "<config>"


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, path: str, env: dict[str, str] | os._Environ[str]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {name} is not set")

        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}" if path else k, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


_AT = re.compile(r" - at `\$(.*)`$")


def _explain(exc: msgspec.ValidationError, prefix: str = "") -> str:
    """``Object contains unknown field `x` - at `$.server``` → ``server.x: unknown key``."""
    text = str(exc)
    match = _AT.search(text)
    where = prefix
    if match:
        text = text[: match.start()]
        where = (prefix + match.group(1)).lstrip(".")
    unknown = re.match(r"Object contains unknown field `([^`]*)`", text)
    if unknown:
        key = f"{where}.{unknown.group(1)}" if where else unknown.group(1)
        return f"{key}: unknown key"
    missing = re.match(r"Object missing required field `([^`]*)`", text)
    if missing:
        key = f"{where}.{missing.group(1)}" if where else missing.group(1)
        return f"{key}: required key is missing"
    enum = re.match(r"Invalid enum value (.*)", text)
    if enum:
        allowed = _CHOICES.get(where.rsplit(".", 1)[-1])
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return f"{where}: unknown value {enum.group(1)}{hint}"
    return f"{where or '(top level)'}: {text[0].lower()}{text[1:]}"


_CHOICES = {
    "task": tuple(PROTOCOLS_BY_TASK),
    "protocol": ("tgi", "pipeline", "openai", "tei"),
    "pooling": ("mean", "cls", "none"),
    "log_format": ("text", "json"),
    "log_level": ("debug", "info", "warning", "error"),
}


def parse_config(text: str, *, source: str = "<config>", env: Any = None) -> Config:
    """Parse, expand and validate config text; raises ``ConfigError``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    try:
        data = _expand(raw, "", os.environ if env is None else env)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    # Models are converted one by one so that an error can name the model.
    models = data.pop("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{source}: models: expected a table of models")
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_explain(exc)}") from None
    for name, model in models.items():
        try:
            config.models[name] = msgspec.convert(model, ModelConfig)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{source}: {_explain(exc, f'models.{name}')}") from None
    config.source = source
    _validate(config)
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the config file at ``path``; raises ``ConfigError``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file: {exc.strerror}") from None
    return parse_config(text, source=str(file))


def _validate(config: Config) -> None:
    src = config.source
    names = set(config.models)
    for name, model in config.models.items():
        key = f"models.{name}"
        if not model.url and not model.hf_model:
            raise ConfigError(f"{src}: {key}: needs `url` (an endpoint) or `hf_model` (serverless)")
        allowed = PROTOCOLS_BY_TASK[model.task]
        if model.protocol is not None and model.protocol not in allowed:
            raise ConfigError(
                f"{src}: {key}.protocol: `{model.protocol}` is not valid for task "
                f"`{model.task}` (use one of: {', '.join(allowed)})"
            )
        for url in urls_of(model):
            if not url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"{src}: {key}.url: `{without_userinfo(url)}` is not an http(s) URL"
                )
        _validate_credentials(config, key, model)
        if model.task == "text2text-generation" and not model.url and model.protocol == "tgi":
            raise ConfigError(f"{src}: {key}.protocol: serverless text2text uses `pipeline`")
        if model.task == "feature-extraction" and not model.url and model.protocol == "tei":
            raise ConfigError(
                f"{src}: {key}.protocol: `tei` needs a `url`; serverless embeddings use `pipeline`"
            )
        for positive in ("timeout", "connect_timeout", "first_token_timeout", "idle_timeout"):
            if getattr(model, positive) <= 0:
                raise ConfigError(f"{src}: {key}.{positive}: must be greater than 0")
        if model.tokenizer == "hub" and not model.hf_model:
            raise ConfigError(f'{src}: {key}.tokenizer: "hub" needs `hf_model`')
        if model.max_batch_size is not None and model.max_batch_size < 1:
            raise ConfigError(f"{src}: {key}.max_batch_size: must be at least 1")
        for limit in ("max_messages", "max_n", "max_prompts", "max_choices", "max_inputs"):
            if getattr(model, limit) < 1:
                raise ConfigError(f"{src}: {key}.{limit}: must be at least 1")
        if model.retries < 0:
            raise ConfigError(f"{src}: {key}.retries: must be 0 or more")
        for fallback in model.fallbacks:
            if fallback not in names or fallback == name:
                raise ConfigError(f"{src}: {key}.fallbacks: `{fallback}` is not another model")
            if config.models[fallback].task != model.task:
                raise ConfigError(f"{src}: {key}.fallbacks: `{fallback}` has a different task")
    for i, client_key in enumerate(config.server.keys):
        for allowed_model in client_key.models or ():
            if allowed_model not in names:
                raise ConfigError(
                    f"{src}: server.keys[{i}].models: `{allowed_model}` is not a configured model"
                )
    for name in ("base_url", "hub_url"):
        if userinfo_of(getattr(config.huggingface, name)) is not None:
            raise ConfigError(
                f"{src}: huggingface.{name}: credentials in the URL are not supported "
                "(use [huggingface].token)"
            )
    if config.server.header_timeout <= 0:
        raise ConfigError(f"{src}: server.header_timeout: must be greater than 0")
    if config.server.max_body_bytes < 1024:
        raise ConfigError(f"{src}: server.max_body_bytes: must be at least 1024")


def _validate_credentials(config: Config, key: str, model: ModelConfig) -> None:
    """``user:password@`` in a model's URL becomes Basic auth, which cannot go with a token
    (one Authorization header) and must be the same for all of the model's URLs (its headers
    are built once, per model)."""
    found = {userinfo_of(url) for url in urls_of(model)}
    if len(found) > 1:
        raise ConfigError(
            f"{config.source}: {key}.url: all urls of a model need the same credentials (or none)"
        )
    token = model.token if model.token is not None else config.huggingface.token
    if next(iter(found), None) is not None and token:
        raise ConfigError(
            f"{config.source}: {key}.url: credentials in the URL and a token (the model's, "
            "else [huggingface].token) cannot both be sent: remove them from the URL, or set "
            'token = "" on this model to send them as Basic auth'
        )


def userinfo_of(url: str) -> str | None:
    """The ``user:password`` part of a URL, still percent-encoded; None without one."""
    netloc = urlsplit(url).netloc
    return netloc.rpartition("@")[0] if "@" in netloc else None


def without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


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
    # Serverless: chat models live on the router's OpenAI API; the rest on hf-inference pipelines.
    return "openai" if model.task == "text-generation" else "pipeline"
