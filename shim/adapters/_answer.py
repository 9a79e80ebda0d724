"""A model's answer split into reasoning, content and tool calls, reasoning first (a think block
comes before any call): ``AnswerParser.feed``/``finish`` for a stream, ``.parse`` for a whole
text. Both run the same machines, so a stream and a whole answer always come out alike.
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from shim.adapters._reasoning import ThinkParser
from shim.adapters._result import Piece, ReasoningPiece, TextPiece, ToolCall, ToolCallStart
from shim.adapters._tool_formats import SPECIAL_TOKENS, Format, may_hold_calls
from shim.adapters._tool_parser import ToolCallParser
from shim.adapters._tools import ToolPlan
from shim.config import ReasoningParser, ToolParser

_THINK_MARKERS = frozenset({"<think>", "</think>"})


def special_markers(tool_parser: Format, reasoning_parser: ReasoningParser) -> frozenset[str]:
    """The marker tokens these parsers read, to be kept in the text when a backend marks them
    special (only these: a special token the parser does not know stays out)."""
    tools = SPECIAL_TOKENS.get(tool_parser, frozenset())
    return tools | _THINK_MARKERS if reasoning_parser == "think" else tools


class Answer(msgspec.Struct):
    content: str
    tool_calls: list[ToolCall]
    reasoning: str = ""


class AnswerParser:
    """One per answer (per choice): ``feed`` text as it arrives, ``finish`` at its end.

    ``names``: the functions that may be called (bare JSON naming another is text, not a call);
    ``parallel``: false keeps only the first call; ``think_open``: the prompt opened a think
    block (``_reasoning.prompt_opens_think``).
    """

    __slots__ = ("_format", "_reasoning", "_think", "_tools")

    def __init__(
        self,
        *,
        tool_parser: Format = "none",
        reasoning_parser: ReasoningParser = "none",
        names: Collection[str] | None = None,
        parallel: bool = True,
        think_open: bool = False,
    ) -> None:
        self._format = tool_parser
        self._reasoning = reasoning_parser
        self._think = ThinkParser(opened=think_open) if reasoning_parser == "think" else None
        self._tools = (
            ToolCallParser(tool_parser, names=names, parallel=parallel)
            if tool_parser != "none"
            else None
        )

    @classmethod
    def for_request(
        cls,
        plan: ToolPlan,
        *,
        tool_parser: ToolParser,
        reasoning_parser: ReasoningParser,
        think_open: bool = False,
        grammar: bool = False,
    ) -> AnswerParser:
        """The parser for an answer to a request with ``plan`` on a model with these parsers;
        ``grammar``: the answer was generated under ``_tools.tool_grammar(plan)``."""
        if plan.tools is None:
            return cls(reasoning_parser=reasoning_parser, think_open=think_open)
        if grammar and plan.forced:
            return cls(tool_parser="forced", names=plan.names, parallel=False)
        return cls(
            tool_parser=tool_parser,
            reasoning_parser=reasoning_parser,
            names=plan.names,
            parallel=plan.parallel,
            think_open=think_open,
        )

    def feed(self, text: str) -> list[Piece]:
        if self._think is None:
            return self._tools.feed(text) if self._tools is not None else _plain(text)
        return self._through_tools(self._think.feed(text))

    def finish(self) -> list[Piece]:
        out = self._through_tools(self._think.finish()) if self._think is not None else []
        if self._tools is not None:
            out.extend(self._tools.finish())
        return out

    def parse(self, text: str) -> Answer:
        """A whole answer (non-stream); the parser is used up."""
        if self._think is None and not may_hold_calls(text, self._format):
            return Answer(text, [])
        return assemble([*self.feed(text), *self.finish()])

    def _through_tools(self, pieces: list[TextPiece | ReasoningPiece]) -> list[Piece]:
        tools = self._tools
        if tools is None:
            return list(pieces)
        out: list[Piece] = []
        for piece in pieces:
            if isinstance(piece, TextPiece):
                out.extend(tools.feed(piece.text))
            else:
                out.append(piece)
        return out


def _plain(text: str) -> list[Piece]:
    return [TextPiece(text)] if text else []


def parse_answer(
    text: str,
    *,
    tool_parser: Format = "none",
    reasoning_parser: ReasoningParser = "none",
    names: Collection[str] | None = None,
    parallel: bool = True,
    think_open: bool = False,
) -> Answer:
    """A whole answer → content, calls and reasoning."""
    parser = AnswerParser(
        tool_parser=tool_parser,
        reasoning_parser=reasoning_parser,
        names=names,
        parallel=parallel,
        think_open=think_open,
    )
    return parser.parse(text)


def assemble(pieces: list[Piece]) -> Answer:
    """Pieces → the answer they add up to, as a client assembling a stream would."""
    texts: list[str] = []
    thoughts: list[str] = []
    names: list[str] = []
    arguments: list[list[str]] = []
    for piece in pieces:
        if isinstance(piece, TextPiece):
            texts.append(piece.text)
        elif isinstance(piece, ReasoningPiece):
            thoughts.append(piece.text)
        elif isinstance(piece, ToolCallStart):
            names.append(piece.name)
            arguments.append([])
        else:
            arguments[piece.index].append(piece.text)
    calls = [ToolCall(name, "".join(parts)) for name, parts in zip(names, arguments, strict=True)]
    return Answer("".join(texts), calls, "".join(thoughts))
