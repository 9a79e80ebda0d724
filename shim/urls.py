"""Where a model's requests go: its upstreams' base URLs for its protocol, the path of each
operation on them, and what credentials in a URL become.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from shim.config import ModelConfig, Protocol, urls_of


def userinfo_of(url: str) -> str | None:
    """The ``user:password`` part of a URL, still percent-encoded; None without one."""
    netloc = urlsplit(url).netloc
    return netloc.rpartition("@")[0] if "@" in netloc else None


def without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def display_url(url: str) -> str:
    """Scheme, host and path only: no credentials or query string in logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


@dataclass(frozen=True, slots=True)
class Paths:
    """Path (appended to an upstream's base URL) of each operation; None = not offered."""

    generate: str | None = None
    generate_stream: str | None = None
    chat: str | None = None
    completions: str | None = None
    embeddings: str | None = None
    rerank: str | None = None

    def offered(self) -> list[str]:
        return [p for p in (getattr(self, f.name) for f in fields(self)) if p is not None]


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream base URL of a model, with every URL the route calls on it parsed once
    (URL parsing is a measurable per-request cost)."""

    base: str
    # The Host header, encoded once (requests are built without httpx's header merging).
    host: bytes
    display: str
    urls: Mapping[str, httpx.URL]

    @classmethod
    def of(cls, base: str, paths: Paths) -> Upstream:
        urls = {path: httpx.URL(base + path) for path in paths.offered()}
        return cls(base, httpx.URL(base).netloc, display_url(base), urls)

    def url(self, path: str) -> httpx.URL:
        return self.urls[path]


def bases_and_paths(
    model: ModelConfig, protocol: Protocol, base_url: str
) -> tuple[list[str], Paths]:
    """The upstreams' base URLs (``base_url``: the serverless one) and the operations' paths."""
    # Credentials in a URL were made an Authorization header: never part of the URL sent.
    urls = [without_userinfo(u).rstrip("/") for u in urls_of(model)]
    hf_model = quote(model.hf_model or "", safe="/")
    if protocol == "openai":
        if not urls and model.task == "feature-extraction":
            # An Inference Provider's own OpenAI-style route (the model's `provider`).
            return [f"{base_url}/{model.provider}/v1"], Paths(embeddings="/embeddings")
        if not urls:
            # The HF router's OpenAI API serves chat only (legacy completions go as chat).
            return [base_url + "/v1"], Paths(chat="/chat/completions")
        bases = [_strip_v1(u) + "/v1" for u in urls]
        return bases, Paths(
            chat="/chat/completions",
            completions="/completions",
            embeddings="/embeddings",
            rerank="/rerank",
        )
    if protocol == "tgi":
        return urls, Paths(generate="/generate", generate_stream="/generate_stream")
    if protocol == "tei":
        return urls, Paths(embeddings="/embed", rerank="/rerank")
    # pipeline
    if model.task == "text-ranking":
        return urls or [f"{base_url}/hf-inference/models/{hf_model}"], Paths(rerank="")
    if model.task == "feature-extraction":
        serverless = f"{base_url}/hf-inference/models/{hf_model}/pipeline/feature-extraction"
        return urls or [serverless], Paths(embeddings="")
    return urls or [f"{base_url}/hf-inference/models/{hf_model}"], Paths(generate="")


def basic_auth(userinfo: str) -> str:
    """RFC 7617 Basic credentials from a URL's percent-encoded ``user:password``."""
    user, _, password = userinfo.partition(":")
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _strip_v1(url: str) -> str:
    return url[: -len("/v1")] if url.endswith("/v1") else url
