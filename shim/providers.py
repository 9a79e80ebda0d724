"""Inference Providers behind the HF router: which provider serves a Hub model, under which
id, read from the Hub's mapping (``GET {hub_url}/api/models/{hf_model}?expand[]=
inferenceProviderMapping``) at startup and cached on disk, never in the request path.

Facts from huggingface.js (``lib/getInferenceProviderMapping``) and huggingface_hub
(``inference/_providers/_common.py``): the mapping is a list of ``{"provider", "providerId",
"status", "task", ...}`` (older Hubs: an object keyed by provider); ``live`` and ``staging``
entries are usable; chat models are mapped under the task ``conversational``. The router takes
chat as ``{hf_model}:{provider}`` (or a policy: ``:fastest``, ``:cheapest``) on ``/v1``, and a
provider's own OpenAI-style routes under ``{base_url}/{provider}/v1`` with its ``providerId``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple, Protocol
from urllib.parse import quote

import httpx
import msgspec

from shim.config import Task
from shim.errors import ShimError

log = logging.getLogger("shim.discovery")
#: Seconds a Hub lookup may take at startup.
HUB_TIMEOUT = 10.0

HF_INFERENCE = "hf-inference"
#: Router policies: the router picks the provider per request (chat only).
POLICIES = ("fastest", "cheapest")
#: Mapping tasks that serve each shim task.
TASKS: dict[Task, tuple[str, ...]] = {
    "text-generation": ("conversational", "text-generation"),
    "feature-extraction": ("feature-extraction", "sentence-similarity"),
}
USABLE = ("live", "staging")


class Client(Protocol):
    """What a lookup needs of the upstream client (``shim.upstream.client.Client``): routing
    imports this module and the client imports routing, so it is named by its shape only."""

    async def get(
        self, url: str, *, headers: Mapping[str, str], limit: float
    ) -> httpx.Response: ...


class ProviderKey(NamedTuple):
    """What a provider lookup depends on (and how its result is kept across reloads)."""

    hub_url: str
    hf_model: str
    provider: str
    task: Task
    cache_dir: str

    def url(self) -> str:
        return (
            f"{self.hub_url}/api/models/{quote(self.hf_model, safe='/')}"
            "?expand[]=inferenceProviderMapping"
        )

    def cache_path(self) -> Path:
        return Path(self.cache_dir) / (self.hf_model.replace("/", "--") + "--providers.json")


class Entry(msgspec.Struct):
    """One provider's mapping of a Hub model (the fields shim reads)."""

    provider: str = ""
    provider_id: str = msgspec.field(default="", name="providerId")
    status: str = ""
    task: str = ""


class _ModelInfo(msgspec.Struct):
    inferenceProviderMapping: list[Entry] | dict[str, Entry] | None = None


_info = msgspec.json.Decoder(_ModelInfo)
_entries = msgspec.json.Decoder(list[Entry])
_encoder = msgspec.json.Encoder()


def entries_of(body: bytes) -> list[Entry]:
    """The Hub's answer as a list of entries (the older object form converted)."""
    mapping = _info.decode(body).inferenceProviderMapping
    if mapping is None:
        return []
    if isinstance(mapping, dict):
        return [msgspec.structs.replace(e, provider=name) for name, e in mapping.items()]
    return mapping


def encode_entries(entries: list[Entry]) -> bytes:
    return _encoder.encode(entries)


def decode_entries(data: bytes) -> list[Entry]:
    return _entries.decode(data)


class Resolution(NamedTuple):
    """A provider's id for the model, or None with the reason it does not serve it."""

    provider_id: str | None
    detail: str


def resolve(entries: list[Entry], key: ProviderKey) -> Resolution:
    tasks = TASKS.get(key.task, ())
    for entry in entries:
        if entry.provider != key.provider or entry.task not in tasks:
            continue
        if entry.status not in USABLE:
            return Resolution(None, f"its mapping is `{entry.status}`")
        return Resolution(entry.provider_id or key.hf_model, entry.status)
    served = sorted({e.provider for e in entries if e.task in tasks and e.status in USABLE})
    return Resolution(None, "it serves no such model; serving providers: " + (
        ", ".join(served) or "none"
    ))  # fmt: skip


def cached(key: ProviderKey) -> list[Entry] | None:
    """The mapping cached on disk at a previous startup (None when there is none)."""
    try:
        return decode_entries(key.cache_path().read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def describe_cached(key: ProviderKey) -> str | None:
    """For ``shim check`` (which reaches no network): the id a previous startup resolved."""
    entries = cached(key)
    if entries is None:
        return None
    resolution = resolve(entries, key)
    if resolution.provider_id is None:
        return f"NOT SERVED: {resolution.detail}"
    return f"id {resolution.provider_id}, cached"


async def learn(
    client: Client, key: ProviderKey, *, headers: Mapping[str, str], name: str
) -> Resolution | None:
    """At startup: the mapping (cached on disk, else fetched with the model's token and
    cached), resolved for ``key``; None when the Hub cannot be read (the Hub id is sent)."""
    entries = cached(key)
    if entries is None:
        entries = await _fetch(client, key, headers=headers, name=name)
        if entries is None:
            log.warning("%s: provider mapping not readable from the Hub; sending %s as the "
                        "model", name, key.hf_model)  # fmt: skip
            return None
        _write(key.cache_path(), encode_entries(entries), name)
    resolution = resolve(entries, key)
    if resolution.provider_id is None:
        log.warning(
            "%s: provider %s does not serve %s for %s (%s); its requests answer 400",
            name, key.provider, key.hf_model, key.task, resolution.detail,
        )  # fmt: skip
    else:
        log.info(
            "%s: provider %s serves %s as %s (%s)",
            name, key.provider, key.hf_model, resolution.provider_id, resolution.detail,
        )  # fmt: skip
    return resolution


async def _fetch(
    client: Client, key: ProviderKey, *, headers: Mapping[str, str], name: str
) -> list[Entry] | None:
    try:
        response = await client.get(key.url(), headers=headers, limit=HUB_TIMEOUT)
        if response.status_code != 200:
            log.warning("%s: Hub answered %d for the provider mapping", name, response.status_code)
            return None
        return entries_of(response.content)
    except (ShimError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _write(path: Path, data: bytes, name: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        log.warning("%s: cannot cache the provider mapping: %s", name, exc.strerror)
