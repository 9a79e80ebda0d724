"""Reasoning in a model's text: ``<think>...</think>`` (DeepSeek-R1, Qwen3, QwQ), as vLLM's
reasoning parsers read it (vllm/reasoning/deepseek_r1_reasoning_parser.py and
qwen3_reasoning_parser.py).

A think block counts at the start of the answer only. Templates that open it in the generation
prompt (DeepSeek-R1's later revisions end the prompt with ``<think>\\n``) make the answer start
inside it with only ``</think>`` to come: ``prompt_opens_think`` tells. A block never closed is
all reasoning (the answer was cut, or the model only thought). Leading whitespace of the
reasoning and of the content after it is dropped; everything else is kept as written.
"""

from __future__ import annotations

from typing import Literal

from shim.adapters._result import ReasoningPiece, TextPiece
from shim.adapters._stop import held_tail
from shim.config import ReasoningParser

OPEN, CLOSE = "<think>", "</think>"
_WS = " \t\n\r"
_START, _THINK, _CONTENT = range(3)


def resolve_reasoning_parser(
    setting: Literal["auto", "think", "none"], template_source: str | None
) -> ReasoningParser:
    """The parser a model uses: as configured, or for ``auto`` the one its template shows."""
    if setting != "auto":
        return setting
    if template_source and (OPEN in template_source or CLOSE in template_source):
        return "think"
    return "none"


def prompt_opens_think(prompt: str) -> bool:
    """The rendered prompt ends inside a think block, so the answer starts in it."""
    return prompt.rstrip(_WS).endswith(OPEN)


class ThinkParser:
    """One per answer: text in, ``ReasoningPiece`` / ``TextPiece`` out, never a tag in either."""

    __slots__ = ("_hold", "_lead", "_opened", "_state", "_strip")

    def __init__(self, *, opened: bool = False) -> None:
        self._opened = opened
        self._state = _START
        self._hold = ""  # input not yet read: it may begin a tag
        self._lead = ""  # leading whitespace: text again if no think block follows
        self._strip = False

    def feed(self, text: str) -> list[TextPiece | ReasoningPiece]:
        if self._state == _CONTENT and not self._strip:
            return [TextPiece(text)] if text else []
        data = self._hold + text if self._hold else text
        self._hold = ""
        out: list[TextPiece | ReasoningPiece] = []
        pos, n = 0, len(data)
        while pos < n:
            if self._state == _START:
                pos = self._start(data, pos, out)
                continue
            if self._strip:
                while pos < n and data[pos] in _WS:
                    pos += 1
                if pos == n:
                    break
                self._strip = False
            if self._state == _CONTENT:
                out.append(TextPiece(data[pos:]))
                break
            at = data.find(CLOSE, pos)
            if at >= 0:
                if at > pos:
                    out.append(ReasoningPiece(data[pos:at]))
                pos = at + len(CLOSE)
                self._state, self._strip = _CONTENT, True
                continue
            cut = held_tail(data, pos, CLOSE)
            if cut > pos:
                out.append(ReasoningPiece(data[pos:cut]))
            self._hold = data[cut:]
            break
        return out

    def _start(self, data: str, pos: int, out: list[TextPiece | ReasoningPiece]) -> int:
        n = len(data)
        end = pos
        while end < n and data[end] in _WS:
            end += 1
        self._lead += data[pos:end]
        if end == n:
            return n
        if data.startswith(OPEN, end):
            self._lead = ""
            self._state, self._strip = _THINK, True
            return end + len(OPEN)
        if OPEN.startswith(data[end:]):
            self._hold = data[end:]
            return n
        if self._opened:
            self._state, self._strip = _THINK, True
        else:
            self._state = _CONTENT
            if self._lead:
                out.append(TextPiece(self._lead))
        self._lead = ""
        return end

    def finish(self) -> list[TextPiece | ReasoningPiece]:
        held, self._hold = self._hold, ""
        state = self._state
        self._state, self._strip = _CONTENT, False
        if state == _START and not self._opened:
            text = self._lead + held
            return [TextPiece(text)] if text else []
        if state != _CONTENT and held:
            return [ReasoningPiece(held)]
        return []
