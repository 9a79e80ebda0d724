"""Chat templates: built-ins, inline Jinja, files, and the model's own from the Hub.

Rendered as transformers renders them (``ImmutableSandboxedEnvironment`` with ``trim_blocks``,
``lstrip_blocks``, ``raise_exception``, ``strftime_now`` and a non-escaping ``tojson``), compiled
once at config load. Hub templates are fetched by ``shim.discovery`` (never in the request
path) and cached on disk.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import jinja2
import msgspec
from jinja2.sandbox import ImmutableSandboxedEnvironment

from shim import hf
from shim._builtin_templates import BUILTINS

log = logging.getLogger("shim.templates")


class TemplateError(Exception):
    """A template that cannot be compiled or rendered for this conversation."""


def _raise_exception(message: str) -> NoReturn:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # transformers' tojson: no HTML escaping, its keyword arguments (Hub templates use them).
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _environment()


class ChatTemplate:
    """A compiled template plus the special tokens it uses."""

    __slots__ = ("_template", "bos_token", "eos_token", "origin", "source", "stop")

    def __init__(
        self,
        source: str,
        *,
        bos_token: str = "",
        eos_token: str = "",
        stop: tuple[str, ...] = (),
        origin: str = "inline",
    ) -> None:
        try:
            template = _ENV.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"invalid Jinja in chat template ({origin}): {exc}") from None
        # Jinja keeps a template's globals as a ChainMap over the environment's and copies it
        # into a dict on every render: iterating the ChainMap was ~6% of a chat request's CPU
        # (bench/profile.md). One plain dict, made here, with the constant variables in it.
        template.globals = {
            **template.globals,
            "add_generation_prompt": True,
            "bos_token": bos_token,
            "eos_token": eos_token,
        }
        self._template = template
        self.source = source  # read once at load for the tool/reasoning parser (``auto``)
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.origin = origin
        stops = list(stop)
        if eos_token and eos_token not in stops:
            stops.append(eos_token)
        self.stop = tuple(stops)

    def render(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None
    ) -> str:
        """The prompt for ``messages``, generation prompt added, leading BOS removed (the
        backend's tokenizer adds its own). ``tools``: OpenAI's tool list, as transformers
        gives it to templates (None: the template renders no tools)."""
        try:
            text = self._template.render(messages=messages, tools=tools)
        except TemplateError:
            raise
        except jinja2.TemplateError as exc:
            raise TemplateError(f"chat template failed: {exc}") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise TemplateError(f"chat template failed on these messages: {exc}") from None
        if self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token) :]
        return text


def resolve(
    spec: str, *, base_dir: Path, bos_token: str | None, eos_token: str | None
) -> ChatTemplate:
    """A config ``chat_template``: a built-in name, inline Jinja, or a file path."""
    builtin = BUILTINS.get(spec)
    if builtin is not None:
        return ChatTemplate(
            builtin.source,
            bos_token=builtin.bos_token if bos_token is None else bos_token,
            eos_token=builtin.eos_token if eos_token is None else eos_token,
            stop=builtin.stop,
            origin=f"built-in {spec}",
        )
    if "{{" in spec or "{%" in spec:
        return ChatTemplate(spec, bos_token=bos_token or "", eos_token=eos_token or "")
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        source = path.read_text(encoding="utf-8")
    except OSError:
        names = ", ".join(BUILTINS)
        raise TemplateError(
            f"`{spec}` is neither a built-in ({names}), inline Jinja, nor a readable file"
        ) from None
    return ChatTemplate(
        source, bos_token=bos_token or "", eos_token=eos_token or "", origin=str(path)
    )


# --- templates from the Hub --------------------------------------------------------------------


_tokenizer_config = msgspec.json.Decoder(hf.TokenizerConfig)


def _token(value: str | dict[str, Any] | None) -> str:
    if isinstance(value, dict):
        return str(value.get("content") or "")
    return value or ""


def from_tokenizer_config(data: bytes, *, jinja: str | None, origin: str) -> ChatTemplate | None:
    """The template in a ``tokenizer_config.json`` (or a separate ``chat_template.jinja``)."""
    try:
        config = _tokenizer_config.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise TemplateError(f"unreadable tokenizer_config.json ({origin}): {exc}") from None
    source: str | None = jinja
    if source is None:
        raw = config.chat_template
        if isinstance(raw, list):
            named = {entry.get("name"): entry.get("template") for entry in raw}
            source = named.get("default") or next(iter(named.values()), None)
        else:
            source = raw
    if not source:
        return None
    return ChatTemplate(
        source,
        bos_token=_token(config.bos_token),
        eos_token=_token(config.eos_token),
        origin=origin,
    )


class CachedTemplate(msgspec.Struct):
    """The on-disk cache entry for one Hub repo."""

    tokenizer_config: str
    jinja: str | None = None


def cache_path(cache_dir: Path, hf_model: str) -> Path:
    return cache_dir / (hf_model.replace("/", "--") + ".json")
