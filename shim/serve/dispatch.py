"""The owner of an API reply, from routing to its last byte.

``serve`` decodes the request, resolves its model for the caller's key, raises the in-flight
gauge, tries the route and then its fallbacks (each attempt under the model's concurrency slot)
and writes the reply itself: JSON, an SSE stream, or the error envelope. Everything acquired on
the way (gauge, slot, the upstream stream) is registered with one ``Held`` and released in
reverse order on every path, after the last byte went out or the client left.

A watcher task listens for ``http.disconnect`` (once the body is read, ``receive()`` returns
nothing else) and cancels the request's task: the upstream call or stream in progress is
cancelled and closed at once, whatever phase the reply is in.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from shim.errors import ModelNotFoundError, ShimError, UpstreamError, UpstreamRejectedError
from shim.held import Held
from shim.route import Route
from shim.serve.call import Attempt, Call, Reply, Request, Service, decode_request
from shim.serve.replies import send_error, send_json
from shim.types import Receive, Send

log = logging.getLogger("shim")
R = TypeVar("R", bound=Request)


class DisconnectWatch:
    """Cancels the current task when the client disconnects."""

    __slots__ = ("_watcher", "gone", "task")

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.gone = False
        self._watcher = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.task.cancel()

    def stop(self) -> None:
        self._watcher.cancel()


async def serve(call: Call, service: Service[R], receive: Receive, send: Send) -> None:
    """Serve one API call to its last byte."""
    watch = DisconnectWatch(receive)
    try:
        async with Held() as held:
            try:
                await _reply(call, service, held, send)
            finally:
                # Before anything is released: a disconnect must not cancel the release itself.
                watch.stop()
    except asyncio.CancelledError:
        if not watch.gone:
            raise
        watch.task.uncancel()
        call.ctx.status = 499  # the client left: counted and logged, nothing more to send


async def _reply(call: Call, service: Service[R], held: Held, send: Send) -> None:
    try:
        request = decode_request(service.decoder, call.body)
        route = _resolve(call, service, request.model)
        fault = service.fault(route, request)
        if fault is not None:
            raise fault
        metrics = call.services.metrics
        metrics.enter(route.name)
        held.callback(metrics.leave, route.name)
        reply = await _answer(call, service, request, route, held)
    except ShimError as exc:
        _note(call, exc)
        await send_error(send, call.active.scrubber, exc)
        return
    if isinstance(reply, bytes):
        await send_json(send, reply)
    else:
        await reply.run(send)


def _resolve(call: Call, service: Service[R], model: str) -> Route:
    """The route of the requested model, for this caller's key.

    A model the key may not use is answered exactly as one that does not exist (404
    ``model_not_found``), before anything else about it, such as its task, is looked at: a
    key cannot discover the other models."""
    ctx = call.ctx
    key = ctx.key
    if key is not None and not key.allows(model):
        raise ModelNotFoundError(model)
    route = call.active.router.for_task(model, service.tasks, path=service.path)
    ctx.model = route.name
    return route


async def _answer(call: Call, service: Service[R], request: R, route: Route, held: Held) -> Reply:
    """The reply of ``route``, else of its ``fallbacks`` (those whose limits the request fits)
    when all its upstreams failed."""
    routes = call.active.router.routes
    chain = [route, *(routes[name] for name in route.fallbacks if name in routes)]
    failure: UpstreamError | None = None
    for current in chain:
        if failure is not None:
            if service.fault(current, request) is not None:
                continue  # the request exceeds this fallback's limits
            call.ctx.error_reason = failure.reason
        try:
            return await _attempt(call, service, request, current, held)
        except UpstreamRejectedError:
            raise  # the request itself was refused: another model would refuse it too
        except UpstreamError as exc:
            failure = exc
    assert failure is not None
    raise failure


async def _attempt(call: Call, service: Service[R], request: R, route: Route, held: Held) -> Reply:
    """One route's try, under its model's concurrency slot. What the answering attempt holds
    moves to ``held`` (the reply's); a failed attempt's is released at once."""
    async with Held() as attempt:
        slots = call.active.slots.get(route.name)
        if slots is not None:
            await slots.acquire()
            attempt.callback(slots.release)
        reply = await service.answer(Attempt(call, route, attempt), request)
        held.take(attempt)
        return reply


def _note(call: Call, error: ShimError) -> None:
    if isinstance(error, UpstreamError):
        ctx = call.ctx
        # The client's own fault (context too long, a bad parameter) is no upstream trouble.
        level = logging.INFO if isinstance(error, UpstreamRejectedError) else logging.WARNING
        log.log(level, "%s: upstream error: %s", ctx.model, call.active.scrubber.describe(error))
        ctx.error_reason = error.reason
