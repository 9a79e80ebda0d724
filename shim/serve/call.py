"""What the serving layer's parts share about one API call, and the contract of an API
operation (``Service``): the extension point for a new task (rerank) next to chat,
completions and embeddings.

``shim.serve.dispatch`` owns a call from routing to its last byte and hands each route it tries
to ``Service.answer`` as an ``Attempt``. What an attempt opens (an upstream stream) is held by
its ``exits``: kept by the reply until its last byte when the attempt answers, released at once
when it fails and a fallback is tried.
"""

from __future__ import annotations

import asyncio
import re
import typing
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import msgspec

from shim.config import Task
from shim.context import RequestContext
from shim.errors import InvalidRequestError
from shim.held import Held
from shim.live import Active
from shim.openai import chat
from shim.route import Route
from shim.serve.relay import Relay, Translator
from shim.services import Services
from shim.upstream.balancer import Pool
from shim.upstream.client import Answer, StreamStart, fan_out
from shim.upstream.stream import OpenStream

T = TypeVar("T")
#: Upstream calls one request may have in flight at once (embedding and rerank batches).
MAX_PARALLEL_BATCHES = 8


class Request(Protocol):
    """What dispatch reads of every decoded API request."""

    @property
    def model(self) -> str: ...


R = TypeVar("R", bound=Request)
_MISSING = re.compile(r"Object missing required field `([^`]*)`")
#: The allowed values named in a 400 for an enum field, by field name.
_CHOICES: dict[str, tuple[str, ...]] = {"role": typing.get_args(chat.Role)}

#: A reply: a JSON body (200), or a client stream, primed (its first event read).
Reply = bytes | Relay
#: What a stream awaits before its last bytes go out, and its closing bytes (``Relay.ending``).
Ending = Callable[[], Awaitable[bytes]] | None


@dataclass(slots=True)
class Call:
    """One API request: the body as read, and the config it is served with."""

    services: Services
    active: Active
    ctx: RequestContext
    body: bytes


class Attempt:
    """One route's try at answering a call."""

    __slots__ = ("call", "exits", "pool", "route")

    def __init__(self, call: Call, route: Route, exits: Held) -> None:
        self.call = call
        self.route = route
        self.pool: Pool = call.active.pools[route.name]
        self.exits = exits

    async def post(self, path: str, body: bytes, parse: Callable[[bytes], T]) -> Answer[T]:
        """The whole answer, parsed inside the upstream attempt (a bad one fails it)."""
        call = self.call
        answer = await call.services.client.send(
            self.route, self.pool, path, body, call.ctx, parse=parse
        )
        assert isinstance(answer, Answer)
        return answer

    async def stream(
        self, path: str, body: bytes, translator: Translator, *, ending: Ending = None
    ) -> Relay:
        """The client stream of an upstream stream, held by this attempt (closed with it, or
        with the reply). The first event is translated inside the upstream attempt, before the
        client got a byte: an error event or garbage fails the attempt. ``ending``: see
        ``Relay``."""
        call, opening = self.call, translator.first()
        start = await call.services.client.send(
            self.route, self.pool, path, body, call.ctx, parse=translator.feed, stream=True
        )
        assert isinstance(start, StreamStart)
        self.exits.push_async(start.stream.aclose)
        return self._relay(translator, start.stream, [opening, start.first], start.rest, ending)

    def replay(self, translator: Translator, *, ending: Ending = None) -> Relay:
        """The client stream of an answer already known (a pipeline cannot stream)."""
        return self._relay(translator, None, [translator.first()], [], ending)

    def _relay(
        self,
        translator: Translator,
        source: OpenStream | None,
        head: list[bytes],
        rest: list[bytes],
        ending: Ending,
    ) -> Relay:
        call = self.call
        return Relay(
            translator, source, head, rest,
            ctx=call.ctx, metrics=call.services.metrics, scrubber=call.active.scrubber,
            ending=ending,
        )  # fmt: skip

    async def fan_out(self, calls: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
        """Concurrent upstream calls (``n`` choices, batches): all or nothing."""
        return await fan_out(self.call.ctx, calls)

    async def in_batches(
        self, items: Sequence[Any], run: Callable[[Any], Awaitable[tuple[list[T], int]]]
    ) -> tuple[list[T], int]:
        """``run`` on ``items`` in batches of the model's batch size (configured, else TEI's
        learned one), at most ``MAX_PARALLEL_BATCHES`` at a time: the results concatenated in
        order, the counts summed. One failed batch cancels the others: nothing partial."""
        size = self.call.services.discovery.batch_size(self.route)
        batches = [items[i : i + size] for i in range(0, len(items), size)]
        if len(batches) == 1:
            return await run(batches[0])
        gate = asyncio.Semaphore(MAX_PARALLEL_BATCHES)

        async def gated(batch: Sequence[Any]) -> tuple[list[T], int]:
            async with gate:
                return await run(batch)

        results: list[T] = []
        total = 0
        for part, count in await self.fan_out([gated(batch) for batch in batches]):
            results.extend(part)
            total += count
        return results, total


class Service(Protocol[R]):
    """One API operation, as dispatch serves it: decode, route by model, answer per route."""

    #: The API route (``/v1/chat/completions``), named in errors.
    path: str
    #: The tasks whose models may serve it.
    tasks: tuple[Task, ...]
    #: The request body's type (its ``model`` is routed).
    decoder: msgspec.json.Decoder[R]

    def fault(self, route: Route, request: R) -> InvalidRequestError | None:
        """The first limit of ``route`` the request exceeds (a 400 on the requested model,
        whatever its protocol; a fallback with one is skipped), else None."""
        ...

    async def answer(self, attempt: Attempt, request: R) -> Reply:
        """The reply on ``attempt.route``; an ``UpstreamError`` moves on to its fallbacks."""
        ...


def _param_of(message: str) -> str | None:
    at = message.rfind(" - at `$")
    if at == -1:
        return None
    return message[at + 8 : -1].lstrip(".") or None


def decode_request(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """Decode a request body; every failure is a 400 naming the field when there is one."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        param = _param_of(message)
        missing = _MISSING.match(message)
        if missing:
            field = ".".join(p for p in (param, missing.group(1)) if p)
            raise InvalidRequestError(f"`{field}` is required.", param=field) from None
        if param is None:
            raise InvalidRequestError(f"Invalid request body: {message}") from None
        text = message[: message.rfind(" - at `$")]
        choices = _CHOICES.get(param.rsplit(".", 1)[-1])
        if choices is not None and text.startswith("Invalid enum value"):
            # The allowed values, not the client's (which may be long or hold control tokens).
            text = f"expected one of {', '.join(choices)}."
        raise InvalidRequestError(f"Invalid `{param}`: {text}", param=param) from None
    except msgspec.DecodeError as exc:
        if not body.strip():
            raise InvalidRequestError("The request body is empty; send a JSON object.") from None
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        # msgspec follows nesting as deep as Python's recursion limit allows (~1,000 levels).
        raise InvalidRequestError("The request body is nested too deeply.") from None
