"""The response store's contract and what every backend shares: the record, owner and
expiry checks, and paging of input items (OpenAI's list shape).

A record keeps the response and the whole conversation its model saw (the previous
response's items, then this request's input; never ``instructions``), so that continuing
from it is one read, whatever became of the responses before it. Backends only store bytes
under a key until a time.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import msgspec

from shim.errors import InvalidRequestError, NotFoundError
from shim.openai import responses as rs

#: The owner of every response when no client keys are configured.
SHARED_OWNER = ""
#: OpenAI's default page size and its bounds for ``/input_items``.
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

Order = Literal["asc", "desc"]
Clock = Callable[[], float]


class StoredResponse(msgspec.Struct, kw_only=True):
    response: rs.Response
    # The conversation before this response's output (see the module docstring).
    input_items: list[rs.Item]
    # The client key's name (or SHARED_OWNER): another owner sees nothing.
    owner: str
    # Wall-clock seconds.
    expires_at: float

    def context(self) -> list[rs.Item]:
        """What a response continuing from this one starts from: its input, then its output."""
        return [*self.input_items, *self.response.output]


class ResponseStore(Protocol):
    async def save(
        self, response: rs.Response, input_items: Sequence[rs.Item], *, owner: str
    ) -> None: ...

    async def get(self, response_id: str, *, owner: str) -> StoredResponse | None: ...

    async def delete(self, response_id: str, *, owner: str) -> bool: ...

    async def list_input_items(
        self,
        response_id: str,
        *,
        owner: str,
        limit: int = DEFAULT_LIMIT,
        order: Order = "desc",
        after: str | None = None,
    ) -> rs.ResponseItemList | None: ...

    async def aclose(self) -> None: ...


def not_found(response_id: str) -> NotFoundError:
    """The 404 for a response that is absent, expired, deleted or another key's."""
    return NotFoundError(f"No response found with id '{response_id}'.", param="response_id")


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StoredResponse)


class RecordStore(ABC):
    """``ResponseStore`` over a backend's three byte operations (``_put``, ``_fetch``,
    ``_remove``). The clock is injected so tests can pass the TTL without sleeping."""

    def __init__(self, *, ttl: float, clock: Clock = time.time) -> None:
        self.ttl = ttl
        self.clock = clock

    @abstractmethod
    async def _put(self, key: str, blob: bytes, *, expires_at: float) -> None: ...

    @abstractmethod
    async def _fetch(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def _remove(self, key: str) -> None: ...

    async def aclose(self) -> None:
        return None

    async def save(
        self, response: rs.Response, input_items: Sequence[rs.Item], *, owner: str
    ) -> None:
        expires_at = self.clock() + self.ttl
        record = StoredResponse(
            response=response, input_items=list(input_items), owner=owner, expires_at=expires_at
        )
        await self._put(response.id, _encoder.encode(record), expires_at=expires_at)

    async def get(self, response_id: str, *, owner: str) -> StoredResponse | None:
        blob = await self._fetch(response_id)
        if blob is None:
            return None
        try:
            record = _decoder.decode(blob)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # Written by an incompatible version: as good as gone.
            return None
        if record.owner != owner or record.expires_at <= self.clock():
            return None
        return record

    async def delete(self, response_id: str, *, owner: str) -> bool:
        if await self.get(response_id, owner=owner) is None:
            return False
        await self._remove(response_id)
        return True

    async def list_input_items(
        self,
        response_id: str,
        *,
        owner: str,
        limit: int = DEFAULT_LIMIT,
        order: Order = "desc",
        after: str | None = None,
    ) -> rs.ResponseItemList | None:
        record = await self.get(response_id, owner=owner)
        if record is None:
            return None
        return page_items(record.input_items, limit=limit, order=order, after=after)


def page_items(
    items: Sequence[rs.Item], *, limit: int, order: str, after: str | None
) -> rs.ResponseItemList:
    """One page of ``items`` as ``/input_items`` lists them (``after`` is an item id)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequestError(f"`limit` must be between 1 and {MAX_LIMIT}.", param="limit")
    if order not in ("asc", "desc"):
        raise InvalidRequestError('`order` must be "asc" or "desc".', param="order")
    ordered = list(items) if order == "asc" else list(reversed(items))
    if after is not None:
        ids = [item.id for item in ordered]
        if after not in ids:
            raise InvalidRequestError(f"No input item with id '{after}'.", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    page = ordered[:limit]
    return rs.ResponseItemList(
        data=page,
        first_id=page[0].id if page else None,
        last_id=page[-1].id if page else None,
        has_more=len(ordered) > limit,
    )
