"""``POST /v1/chat/completions``: on ``openai`` upstreams the request as sent
(``passthrough``); on rendered protocols the conversation rendered with the model's chat
template into a ``Job`` (``generation``). Fallbacks may cross both.
"""

from __future__ import annotations

import msgspec

from shim.adapters import _params, _prompt
from shim.errors import InvalidRequestError
from shim.openai import chat
from shim.routing import Route
from shim.serve import generation, limits, passthrough
from shim.serve.call import Attempt, Reply, decode_request
from shim.serve.formats import ChatFormat
from shim.templates import ChatTemplate

_request = msgspec.json.Decoder(chat.ChatCompletionRequest)


def _prompt_of(route: Route, template: ChatTemplate | None, req: chat.ChatCompletionRequest) -> str:
    if template is not None:
        return _prompt.render(template, req.messages)
    if route.task == "text2text-generation":
        return _prompt.render_plain(req.messages)
    raise InvalidRequestError(
        f"The model `{route.name}` has no chat template. Set `chat_template` in its config (a "
        "built-in such as chatml, llama-3, mistral; inline Jinja; or a file), or use "
        "/v1/completions with a ready prompt.",
        param="messages",
        code="chat_template_missing",
    )


class Chat:
    path = "/v1/chat/completions"
    tasks = generation.GENERATION_TASKS

    def decode(self, body: bytes) -> chat.ChatCompletionRequest:
        return decode_request(_request, body)

    def model(self, request: chat.ChatCompletionRequest) -> str:
        return request.model

    def fault(
        self, route: Route, request: chat.ChatCompletionRequest
    ) -> InvalidRequestError | None:
        return limits.fault(route, limits.of_chat(request))

    async def answer(self, attempt: Attempt, request: chat.ChatCompletionRequest) -> Reply:
        route = attempt.route
        if route.generator is None:
            return await passthrough.respond(attempt, kind="chat")
        params = _params.from_chat(request)
        if request.stream and params.n > 1:
            raise InvalidRequestError("Streaming with `n` > 1 is not supported here.", param="n")
        template = attempt.call.services.discovery.template(route)
        job = generation.Job(
            route=route,
            adapter=route.generator,
            template=template,
            params=params,
            prompts=[_prompt_of(route, template, request)],
            fmt=ChatFormat(route.name),
            stream=bool(request.stream),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
        )
        return await generation.respond(attempt, job)


SERVICE = Chat()
