"""What text from an upstream may say once it reaches a client or a log (README "Security").

One ``Scrubber`` per config, built at load (and on reload): every configured secret, matched
literally in one pass, then token-like text. Every error a client gets (the exception handler,
a reply's error, a stream's error event) is rendered by ``envelope`` (or built from ``body``),
and every log line about a failure by ``describe``; nothing else renders an error's message.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import unquote

import msgspec

from shim.config import Config, urls_of
from shim.errors import ErrorBody, ErrorDetail, ShimError, UpstreamError
from shim.urls import userinfo_of

#: Token-like text, whatever the config: ``Bearer <x>`` and ``api_key=<x>`` (the prefix is
#: kept), Hugging Face tokens, OpenAI-style ``sk-`` keys.
TOKEN_LIKE = re.compile(r"(?i:(bearer\s+|api[_-]?key\W+))\S+|\bhf_[A-Za-z0-9_-]+|\bsk-\S+")
# What any TOKEN_LIKE match contains (lowercased): most messages have none, and these
# substring checks cost a tenth of the regex's scan.
_HINTS = ("bearer", "api", "hf_", "sk-")
MASK = "***"
#: The longest message a client or a log gets (after scrubbing).
MAX_MESSAGE = 1000
#: How much of a message is scanned; the rest is dropped unread (bounds the cost of a huge body).
SCAN_LIMIT = 64 * 1024

_encoder = msgspec.json.Encoder()


def _mask(match: re.Match[str]) -> str:
    return (match.group(1) or "") + MASK


class Scrubber:
    """Removes secrets from text: the configured ones literally, then ``TOKEN_LIKE``.

    ``log_messages`` (``[server] log_bodies``): whether log lines may carry an upstream's
    message at all; such messages often echo the prompt.
    """

    __slots__ = ("_literals", "_longest", "log_messages")

    def __init__(self, secrets: Iterable[str] = (), *, log_messages: bool = False) -> None:
        # Longest first: a secret that contains another is removed whole.
        unique = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._literals = re.compile("|".join(map(re.escape, unique))) if unique else None
        self._longest = len(unique[0]) if unique else 0
        self.log_messages = log_messages

    @classmethod
    def for_config(cls, config: Config, *also: Config) -> Scrubber:
        """The scrubber of ``config``, also knowing the secrets of ``also`` (after a reload,
        requests still in flight use the old config's tokens)."""
        secrets = [s for c in (config, *also) for s in secrets_of(c)]
        return cls(secrets, log_messages=config.server.log_bodies)

    def __call__(self, text: str) -> str:
        keep = len(text)
        if keep > SCAN_LIMIT:
            text = text[:SCAN_LIMIT]
            # A secret cut in two by the limit would escape the literal match: drop the raw
            # text from where such a piece could start.
            keep = SCAN_LIMIT - max(self._longest - 1, 0)
        if self._literals is not None:
            text = _replace_before(self._literals, text, keep)
        elif keep < len(text):
            text = text[:keep]
        lowered = text.lower()
        if any(hint in lowered for hint in _HINTS):
            text = TOKEN_LIKE.sub(_mask, text)
        return text[:MAX_MESSAGE]

    def body(self, error: ShimError) -> ErrorBody:
        """OpenAI's error object for ``error``, its message scrubbed if it is an upstream's
        (only an ``UpstreamError`` carries upstream text; shim's own messages, such as the
        404 for an unknown model, are sent as they are: scrubbing costs ~10 µs)."""
        message = self(error.message) if isinstance(error, UpstreamError) else error.message
        return ErrorBody(ErrorDetail(message, error.type, error.param, error.code))

    def envelope(self, error: ShimError) -> bytes:
        """``body`` as JSON: what a client gets."""
        return _encoder.encode(self.body(error))

    def describe(self, error: ShimError) -> str:
        """A failure for a log line: status, code, and for an upstream failure its reason and
        the upstream's status; the (scrubbed) message only when ``log_messages``."""
        text = f"status={error.status_code} code={error.code}"
        if isinstance(error, UpstreamError):
            text += f" reason={error.reason} upstream_status={error.upstream_status}"
        if self.log_messages:
            text += f" message={self(error.message)!r}"
        return text


def _replace_before(pattern: re.Pattern[str], text: str, keep: int) -> str:
    """``pattern`` masked in ``text``, which is cut at ``keep`` (a match that starts before
    ``keep`` is masked whole)."""
    if keep >= len(text):
        return pattern.sub(MASK, text)
    parts: list[str] = []
    position = 0
    for match in pattern.finditer(text):
        if match.start() >= keep:
            break
        parts += (text[position : match.start()], MASK)
        position = match.end()
    if position < keep:
        parts.append(text[position:keep])
    return "".join(parts)


def secrets_of(config: Config) -> list[str]:
    """Every secret a config holds: upstream tokens, client keys, URL credentials."""
    found = [config.huggingface.token or "", *config.server.api_keys]
    found += [key.key for key in config.server.keys]
    urls = [config.huggingface.base_url, config.huggingface.hub_url]
    for model in config.models.values():
        found.append(model.token or "")
        urls += urls_of(model)
    for url in urls:
        found += _url_credentials(url)
    return found


def _url_credentials(url: str) -> list[str]:
    """The password and the whole ``user:password`` of a URL's userinfo, or a lone user name
    (``https://TOKEN@host``), raw and percent-decoded; and the Basic auth credential shim
    sends for them (``shim.urls``)."""
    try:
        userinfo = userinfo_of(url)
    except ValueError:
        return []
    if not userinfo:
        return []
    user, _, password = userinfo.partition(":")
    raw = [password, userinfo] if password else [user]
    basic = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return [*raw, *map(unquote, raw), basic]
