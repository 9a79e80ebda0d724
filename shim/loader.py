"""Reading a config file: TOML, ``${VAR}`` expansion, the schema (``shim.config``) and the rules
beyond types.

``${VAR}`` in the file is expanded from the environment here, where the default state path is
read too (``XDG_DATA_HOME``, ``HOME``); the other variables shim reads are ``SHIM_CONFIG``,
``PROMETHEUS_MULTIPROC_DIR`` and ``XDG_CACHE_HOME``. ``load_config``
either returns a complete, valid ``Config`` or raises ``ConfigError`` with one line naming the
file, the key and the fault.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from shim.config import PROTOCOLS_BY_TASK, Config, ConfigError, ModelConfig, StateConfig, urls_of
from shim.urls import userinfo_of, without_userinfo

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
    "token_ids": ("cl100k", "model", "reject"),
    "tool_parser": ("auto", "hermes", "llama3_json", "mistral", "json", "none"),
    "reasoning_parser": ("auto", "think", "none"),
    "log_format": ("text", "json"),
    "log_level": ("debug", "info", "warning", "error"),
    "backend": ("sqlite", "memory", "redis"),
}


def parse_config(text: str, *, source: str = "<config>", env: Any = None) -> Config:
    """Parse, expand and validate config text; raises ``ConfigError``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    env = os.environ if env is None else env
    try:
        data = _expand(raw, "", env)
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
    if config.state.backend == "sqlite" and config.state.path is None:
        config.state.path = str(default_state_path(env))
    return config


def default_state_path(env: Any) -> Path:
    """``$XDG_DATA_HOME/shim/state.db``, else ``~/.local/share/shim/state.db``."""
    xdg = env.get("XDG_DATA_HOME")
    # The XDG spec says a relative value is to be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "shim" / "state.db"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "share" / "shim" / "state.db"


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
        if model.task == "text-ranking" and not model.url and model.protocol in ("tei", "openai"):
            raise ConfigError(
                f"{src}: {key}.protocol: `{model.protocol}` needs a `url`; serverless rerank "
                "uses `pipeline`"
            )
        for positive in ("timeout", "connect_timeout", "first_token_timeout", "idle_timeout"):
            if getattr(model, positive) <= 0:
                raise ConfigError(f"{src}: {key}.{positive}: must be greater than 0")
        _validate_provider(src, key, model)
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
    _validate_state(config.state, src)


def _validate_state(state: StateConfig, src: str) -> None:
    if state.backend == "redis":
        if not state.url:
            raise ConfigError(f'{src}: state.url: backend = "redis" needs a url (redis://...)')
        if not state.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"{src}: state.url: expected a redis://, rediss:// or unix:// URL")
    elif state.url is not None:
        raise ConfigError(f'{src}: state.url: only used with backend = "redis"')
    if state.path is not None and state.backend != "sqlite":
        raise ConfigError(f'{src}: state.path: only used with backend = "sqlite"')
    if state.response_ttl <= 0:
        raise ConfigError(f"{src}: state.response_ttl: must be greater than 0")


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


def _validate_provider(src: str, key: str, model: ModelConfig) -> None:
    """``provider``: serverless models with a Hub id, on a task some provider serves."""
    provider = model.provider
    if provider is None:
        return
    if model.url:
        raise ConfigError(
            f"{src}: {key}.provider: for serverless models only (a model with a `url` is "
            "served there)"
        )
    if not model.hf_model:
        raise ConfigError(f"{src}: {key}.provider: needs `hf_model`")
    if provider == "hf-inference":
        return
    if model.task not in ("text-generation", "feature-extraction"):
        raise ConfigError(f"{src}: {key}.provider: `{model.task}` is served by hf-inference only")
    if model.task == "feature-extraction" and provider in ("fastest", "cheapest"):
        raise ConfigError(
            f"{src}: {key}.provider: `{provider}` is a chat policy; embeddings need a provider"
        )
    if model.protocol not in (None, "openai"):
        raise ConfigError(f"{src}: {key}.protocol: providers speak `openai` (remove `protocol`)")
