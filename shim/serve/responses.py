"""``POST /v1/responses``: the Responses API on the chat path. The request (with the stored
conversation it continues, ``shim.serve.history``) becomes a chat request
(``adapters.response_chat``) that runs as ``/v1/chat/completions`` runs on every protocol: a
``Job`` on rendered protocols (``generation``), the chat request sent on to ``openai``
upstreams. Answers come back as neutral results (a ``Generation``, stream ``Piece``s) and leave
as a ``response`` object or its event stream (``adapters.response_output``,
``adapters.response_stream``); with ``store`` the response is saved before its last byte goes
out. Stored responses: ``shim.serve.stored``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec

from shim.adapters import TextGeneration, openai_answer, openai_compat
from shim.adapters import response_chat as to_chat
from shim.adapters import responses as reading
from shim.adapters._result import Generation, estimate_tokens
from shim.adapters.response_output import build_response
from shim.adapters.response_stream import ResponseStream
from shim.config import GENERATION_TASKS
from shim.context import RequestContext, new_id
from shim.errors import InvalidRequestError
from shim.openai import chat
from shim.openai import responses as rs
from shim.route import Route
from shim.serve import generation, limits
from shim.serve import response_streams as streams
from shim.serve.call import Attempt, Reply
from shim.serve.chat import SERVICE as CHAT
from shim.serve.history import load
from shim.state import SHARED_OWNER, ResponseStore

_request = msgspec.json.Decoder(rs.ResponseCreateRequest)
_encoder = msgspec.json.Encoder()


def owner_of(ctx: RequestContext) -> str:
    """Whose a stored response is: the client key's name, or everyone's without keys."""
    return ctx.key_name or SHARED_OWNER


@dataclass(slots=True, kw_only=True)
class Turn:
    """One response being made on one route: its id, the conversation, the chat request."""

    request: rs.ResponseCreateRequest
    response_id: str
    created_at: int
    # What the model sees and what is stored as the input items (never `instructions`).
    context: list[rs.Item]
    chat: chat.ChatCompletionRequest
    # None with `store: false`.
    store: ResponseStore | None
    owner: str

    def events(self) -> ResponseStream:
        return ResponseStream(
            self.request, response_id=self.response_id, created_at=self.created_at
        )

    def response(self, generation: Generation) -> rs.Response:
        return build_response(
            generation,
            request=self.request,
            response_id=self.response_id,
            created_at=self.created_at,
        )

    async def save(self, response: rs.Response | None) -> None:
        if self.store is not None and response is not None:
            await self.store.save(response, self.context, owner=self.owner)


async def _turn(attempt: Attempt, request: rs.ResponseCreateRequest) -> Turn:
    """The turn on ``attempt.route``: input read (400s first), the previous conversation
    loaded, the chat request built and checked against the model's limits."""
    call, route = attempt.call, attempt.route
    response_id = "resp_" + new_id(32)
    # Rendered protocols read text only; an OpenAI-speaking upstream may read images.
    text_only = route.generator is not None
    read = reading.read_input(request, response_id=response_id, text_only=text_only)
    store, owner = call.services.stored.responses, owner_of(call.ctx)
    previous_id = request.previous_response_id
    history, items = await load(store, read, previous_id=previous_id, owner=owner)
    context = reading.conversation(history, items)
    chat_request = to_chat.to_chat(request, context, text_only=text_only)
    fault = limits.fault(route, limits.of_chat(chat_request))
    if fault is not None:
        raise fault
    return Turn(
        request=request,
        response_id=response_id,
        created_at=int(time.time()),
        context=context,
        chat=chat_request,
        store=None if request.store is False else store,
        owner=owner,
    )


class Responses:
    path = "/v1/responses"
    tasks = GENERATION_TASKS
    decoder = _request

    def fault(self, route: Route, request: rs.ResponseCreateRequest) -> InvalidRequestError | None:
        # The conversation is known per attempt (`_turn` checks it); here what the request says.
        demand = limits.Demand(
            messages=len(request.input) if isinstance(request.input, list) else 1,
            n=1, prompts=1, choices=1, choices_param="n",
            max_tokens=request.max_output_tokens, max_tokens_param="max_output_tokens",
        )  # fmt: skip
        return limits.fault(route, demand)

    async def answer(self, attempt: Attempt, request: rs.ResponseCreateRequest) -> Reply:
        turn = await _turn(attempt, request)
        attempt.call.ctx.stream = bool(request.stream)
        adapter = attempt.route.generator
        if adapter is None:
            return await _passthrough(attempt, turn)
        return await _rendered(attempt, turn, adapter)


SERVICE = Responses()


async def _whole(turn: Turn, ctx: RequestContext, generation: Generation) -> bytes:
    ctx.prompt_tokens = generation.prompt_tokens or 0
    ctx.completion_tokens = generation.completion_tokens or 0
    response = turn.response(generation)
    await turn.save(response)
    return _encoder.encode(response)


# --- rendered protocols (TGI, pipelines) --------------------------------------------------------


async def _rendered(attempt: Attempt, turn: Turn, adapter: TextGeneration) -> Reply:
    job = CHAT.job(attempt, adapter, turn.chat)
    events = turn.events()
    if job.stream and adapter.stream_path is not None:
        body = generation.payload(job, job.prompts[0])
        translator = streams.RenderedEvents(job, events)
        ending = streams.stored(events, turn.save, attempt.call.ctx)
        return await attempt.stream(adapter.stream_path, body, translator, ending=ending)
    [answer] = await generation.generate(attempt, job)
    if job.stream:
        # The pipeline cannot stream: its one answer is sent as a stream.
        ending = streams.stored(events, turn.save, attempt.call.ctx)
        return attempt.replay(streams.Replayed(events, answer), ending=ending)
    return await _whole(turn, attempt.call.ctx, answer)


# --- OpenAI-speaking upstreams ------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A chat request's builtins without the nulls of fields nobody set (vLLM rejects some)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _parse_whole(body: bytes) -> Generation:
    return openai_answer.generation_of(openai_compat.decode(body))


async def _passthrough(attempt: Attempt, turn: Turn) -> Reply:
    route, ctx = attempt.route, attempt.call.ctx
    stream = bool(turn.request.stream)
    request = _plain(msgspec.to_builtins(turn.chat))
    attempt.call.services.discovery.provider_id(route)  # a 400 when the provider serves none
    body = openai_compat.to_payload(request, upstream_model=route.upstream_model, stream=stream)
    path = route.paths.chat
    assert path is not None
    if stream:
        events = turn.events()
        estimate = estimate_tokens(_prompt_text(turn.chat))
        translator = streams.PassthroughEvents(events, estimate)
        ending = streams.stored(events, turn.save, ctx)
        return await attempt.stream(path, body, translator, ending=ending)
    answer = (await attempt.post(path, body, _parse_whole)).value
    if answer.prompt_tokens is None:
        answer.prompt_tokens = estimate_tokens(_prompt_text(turn.chat))
    if answer.completion_tokens is None:
        answer.completion_tokens = estimate_tokens(answer.text)
    return await _whole(turn, ctx, answer)


def _prompt_text(request: chat.ChatCompletionRequest) -> str:
    return "".join(m.content for m in request.messages if isinstance(m.content, str))
