"""What a Responses API request continues from, read from the response store: the previous
response's conversation (``previous_response_id``) and the items its ``input`` references by
id (``item_reference``: the Vercel AI SDK sends one for each earlier assistant item).

An item id names the response that made it (``adapters.responses.response_of``), so each
response named is read once, whatever the number of its items referenced, and the previous
response's record serves its references too. The owner rule is the store's: another key's
response is not found.
"""

from __future__ import annotations

import asyncio

from shim.adapters import responses as reading
from shim.errors import InvalidRequestError
from shim.openai import responses as rs
from shim.state import ResponseStore, StoredResponse


async def load(
    store: ResponseStore, items: reading.Input, *, previous_id: str | None, owner: str
) -> tuple[list[rs.Item], list[rs.Item]]:
    """The previous response's conversation (empty without ``previous_id``) and ``items``
    with their references resolved; a 400 names what is not found."""
    wanted = {item.response_id for item in items if isinstance(item, reading.Reference)}
    names = [name for name in wanted if name is not None and name != previous_id]
    if previous_id:
        names.append(previous_id)
    records = await _read(store, names, owner=owner)
    found = {name: record.context() for name, record in records.items() if record is not None}
    history: list[rs.Item] = []
    if previous_id:
        if previous_id not in found:
            raise InvalidRequestError(
                f"Previous response with id '{previous_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        history = found[previous_id]
    return history, reading.resolve(items, found)


async def _read(
    store: ResponseStore, names: list[str], *, owner: str
) -> dict[str, StoredResponse | None]:
    """The records of ``names`` (None where absent or another owner's), read concurrently."""
    if not names:
        return {}
    if len(names) == 1:
        return {names[0]: await store.get(names[0], owner=owner)}
    # Every read is awaited to its end, so that a failed one leaves no task behind.
    records = await asyncio.gather(
        *(store.get(name, owner=owner) for name in names), return_exceptions=True
    )
    out: dict[str, StoredResponse | None] = {}
    for name, record in zip(names, records, strict=True):
        if isinstance(record, BaseException):
            raise record
        out[name] = record
    return out
