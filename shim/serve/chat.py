"""``POST /v1/chat/completions``: on ``openai`` upstreams the request as sent
(``passthrough``); on rendered protocols the conversation rendered with the model's chat
template into a ``Job`` (``generation``). Fallbacks may cross both.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shim.adapters import TextGeneration, _params, _prompt, _tools
from shim.errors import InvalidRequestError
from shim.openai import chat
from shim.route import Route
from shim.serve import answers, generation, limits
from shim.serve.call import Attempt
from shim.serve.formats import ChatFormat
from shim.serve.job import Job
from shim.templates import ChatTemplate

_request = msgspec.json.Decoder(chat.ChatCompletionRequest)


def _prompt_of(
    route: Route,
    template: ChatTemplate | None,
    req: chat.ChatCompletionRequest,
    tools: list[dict[str, Any]] | None,
) -> str:
    if template is not None:
        return _prompt.render(template, req.messages, tools=tools)
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
    ) -> Job:
        params = _params.from_chat(request)
        if request.stream and params.n > 1:
            raise InvalidRequestError("Streaming with `n` > 1 is not supported here.", param="n")
        route = attempt.route
        template = attempt.call.services.discovery.template(route)
        plan = _tools.plan_request(request)
        grammar = _forced_grammar(plan, adapter, params)
        prompt = _prompt_of(route, template, request, plan.tools)
        tool_parser, reasoning_parser = route.parsers(template)
        reading = answers.reading(
            plan, tool_parser=tool_parser, reasoning_parser=reasoning_parser, grammar=grammar
        )
        fmt = ChatFormat(route.name, legacy=plan.legacy)
        return generation.job(
            attempt, adapter, request,
            template=template, params=params, prompts=[prompt], fmt=fmt, reading=reading,
        )  # fmt: skip


def _forced_grammar(
    plan: _tools.ToolPlan, adapter: TextGeneration, params: _params.GenerationParams
) -> bool:
    """A forced call (``tool_choice`` "required" or a named function) is generated under TGI's
    grammar; a pipeline cannot constrain generation, so it cannot force one. True: forced."""
    grammar = _tools.tool_grammar(plan)
    if grammar is None:
        return False
    if not adapter.accepts_grammar:
        raise InvalidRequestError(
            "A `tool_choice` that forces a tool call needs constrained generation, which this "
            'model\'s pipeline upstream lacks: use "auto", or a TGI or OpenAI-speaking upstream.',
            param="tool_choice",
        )
    if params.grammar is not None:
        raise InvalidRequestError(
            "`response_format` cannot be combined with a `tool_choice` that forces a call "
            "(both constrain the output).",
            param="response_format",
        )
    params.grammar = grammar
    return True


SERVICE = Chat()
