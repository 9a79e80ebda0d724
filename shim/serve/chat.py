"""``POST /v1/chat/completions``: on ``openai`` upstreams the request as sent
(``passthrough``); on rendered protocols the conversation rendered with the model's chat
template into a ``Job`` (``generation``). Fallbacks may cross both.
"""

from __future__ import annotations

import msgspec

from shim.adapters import TextGeneration, _params, _prompt
from shim.errors import InvalidRequestError
from shim.openai import chat
from shim.routing import Route
from shim.serve import generation, limits
from shim.serve.call import Attempt
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


class Chat(generation.GenerationService[chat.ChatCompletionRequest]):
    path = "/v1/chat/completions"
    decoder = _request
    kind = "chat"

    def demand(self, request: chat.ChatCompletionRequest) -> limits.Demand:
        return limits.of_chat(request)

    def job(
        self, attempt: Attempt, adapter: TextGeneration, request: chat.ChatCompletionRequest
    ) -> generation.Job:
        params = _params.from_chat(request)
        if request.stream and params.n > 1:
            raise InvalidRequestError("Streaming with `n` > 1 is not supported here.", param="n")
        route = attempt.route
        template = attempt.call.services.discovery.template(route)
        prompt = _prompt_of(route, template, request)
        return generation.job(
            attempt, adapter, request,
            template=template, params=params, prompts=[prompt], fmt=ChatFormat(route.name),
        )  # fmt: skip


SERVICE = Chat()
