"""How a rendered model's chat answer is read: tool calls and reasoning taken out of its text
(``adapters._answer``), decided once per request from its ``ToolPlan`` and the model's parsers.

``reading`` is None when there is nothing to read (no tools, no reasoning parser): the answer
is then plain text and streams on the pre-encoded text-chunk path.
"""

from __future__ import annotations

from dataclasses import dataclass

from shim.adapters._answer import AnswerParser, special_markers
from shim.adapters._reasoning import prompt_opens_think
from shim.adapters._result import Generation
from shim.adapters._tools import ToolPlan
from shim.config import ReasoningParser, ToolParser


@dataclass(frozen=True, slots=True)
class Reading:
    plan: ToolPlan
    tool_parser: ToolParser
    reasoning_parser: ReasoningParser
    # The answer was generated under the plan's forced-call grammar (TGI).
    grammar: bool
    # Special tokens to keep in the text: the parsers read them (never sent to the client).
    markers: frozenset[str]

    def parser(self, prompt: str) -> AnswerParser:
        """A parser for one answer to ``prompt`` (one per choice)."""
        think_open = self.reasoning_parser == "think" and prompt_opens_think(prompt)
        return AnswerParser.for_request(
            self.plan,
            tool_parser=self.tool_parser,
            reasoning_parser=self.reasoning_parser,
            think_open=think_open,
            grammar=self.grammar,
        )

    def finish_reason(self, reason: str, *, called: bool) -> str:
        """OpenAI's finish reason once calls were read: ``tool_calls`` (``function_call`` for
        the legacy API) unless the answer was cut by the token budget."""
        if not called or reason == "length":
            return reason
        return "function_call" if self.plan.legacy else "tool_calls"

    def apply(self, generation: Generation, prompt: str) -> None:
        """A whole answer: its text split into content, calls and reasoning, in place."""
        answer = self.parser(prompt).parse(generation.text)
        generation.text = answer.content
        generation.tool_calls = answer.tool_calls
        generation.reasoning = answer.reasoning
        generation.finish_reason = self.finish_reason(
            generation.finish_reason, called=bool(answer.tool_calls)
        )


def reading(
    plan: ToolPlan,
    *,
    tool_parser: ToolParser,
    reasoning_parser: ReasoningParser,
    grammar: bool,
) -> Reading | None:
    """How to read answers to a request with ``plan``; None: as plain text."""
    if plan.tools is None and reasoning_parser == "none":
        return None
    active = "forced" if grammar else (tool_parser if plan.tools is not None else "none")
    return Reading(
        plan=plan,
        tool_parser=tool_parser,
        reasoning_parser=reasoning_parser,
        grammar=grammar,
        markers=special_markers(active, reasoning_parser),
    )
