"""Tool calls in a model's text, as it streams (``ToolCallParser``; a whole answer is the same
machine fed once: ``_answer.parse_answer``, so both always agree).

Formats, as vLLM's parsers read them (vllm/entrypoints/openai/tool_parsers/*) and the model
cards document them:

- ``hermes`` (Hermes 2 Pro/3, Qwen2.5/3): ``<tool_call>{"name", "arguments"}</tool_call>``, one
  block per call; a last block left open still counts. Text before the first block is the
  content; text after a block is kept too (the format does not end the message there). An
  answer of bare call objects counts too (the tags dropped as special tokens).
- ``llama3_json`` (Llama 3.1-3.3): ``{"name": .., "parameters": {..}}`` as the whole answer or
  after ``<|python_tag|>``; several calls joined by ``;``. Text after the calls is dropped.
- ``mistral``: ``[TOOL_CALLS][{"name", "arguments"}, ..]`` (v0.3), or ``[TOOL_CALLS]name[ARGS]{..}``
  per call (tokenizer v11+; ``name{..}`` when ``[ARGS]`` was decoded away). An answer that is the
  bare array counts too: servers that skip special tokens drop ``[TOOL_CALLS]``. Text after the
  calls is dropped.
- ``json``: an answer that is one ``{"name", "arguments"}`` object; ``forced``: the same, written
  under a grammar that makes it a call (``_tools.tool_grammar``).

``arguments`` is the model's JSON for them without insignificant whitespace (a compact encoding
of the same object), so streamed pieces concatenate to exactly the final string. A call starts
(``ToolCallStart``) once its name is read; before that nothing of it is sent, and JSON that
turns out not to be a call is returned as the text it was. A call cut off after its start keeps
the arguments read so far (as OpenAI's own calls cut by ``length``). Bare JSON (no marker) is a
call only if its keys are call keys and, when ``names`` is given, its name is one of them.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Literal

from shim.adapters._json_stream import DONE, ERROR
from shim.adapters._result import Piece, TextPiece, ToolCallArguments, ToolCallStart
from shim.adapters._stop import held_tail
from shim.adapters._tool_call import CallObject
from shim.config import ToolParser

#: A configured parser, or ``forced``: the answer was written under a grammar that makes it one
#: ``{"name", "arguments"}`` object (``_tools.tool_grammar``).
Format = Literal[ToolParser, "forced"]

_WS = " \t\n\r"
_MARKER: dict[str, str] = {
    "hermes": "<tool_call>",
    "mistral": "[TOOL_CALLS]",
    "llama3_json": "<|python_tag|>",
}
# What an answer that is nothing but a call starts with, marker or not.
# (Servers that skip special tokens drop the markers of models that made them special.)
_BARE = {"hermes": "{", "mistral": "[", "llama3_json": "{", "json": "{", "forced": "{"}
_HERMES_END = "</tool_call>"
_ARGS = "[ARGS]"
_NAME_RUN = re.compile(r"[A-Za-z0-9_.\-]*")
_NAME_CHAR = re.compile(r"[A-Za-z0-9_.\-]")

# Parser states.
(TEXT, OPEN, CALL, BLOCK, SKIP, ARRAY_FIRST, ARRAY_NEXT, ARRAY_ITEM) = range(8)
(NAME, NAME_END, SEPARATOR, NEXT_CALL, AFTER, DROP) = range(8, 14)
# Where a region goes once a call in it broke: the rest of the block, or of the answer.
_BROKEN = {"hermes": SKIP, "mistral": AFTER}


def _skip_ws(data: str, pos: int) -> int:
    n = len(data)
    while pos < n and data[pos] in _WS:
        pos += 1
    return pos


class ToolCallParser:
    """One per answer: ``feed`` text as it arrives, ``finish`` at its end; each returns pieces."""

    def __init__(
        self, fmt: Format, *, names: Collection[str] | None = None, parallel: bool = True
    ) -> None:
        self._fmt = fmt
        self._marker = _MARKER.get(fmt)
        self._bare = _BARE.get(fmt, "")
        self._names = None if names is None else frozenset(names)
        self._parallel = parallel
        self._state = TEXT if fmt != "none" else DROP
        self._hold = ""  # input not yet read: it may begin a marker
        self._start = True  # only whitespace so far
        self._lead = ""  # that whitespace: dropped if a call follows
        self._lstrip = False  # drop the whitespace after a closed block
        self._raw: list[str] = []  # the current call's text, returned if it is no call
        self._region = False  # a call of the current marker region was committed
        self._guarded = False
        self._call: CallObject | None = None
        self._then = DROP  # the state after the current call object
        self._name: list[str] = []
        self._count = 0
        self._out: list[Piece] = []

    def feed(self, text: str) -> list[Piece]:
        if self._fmt == "none":
            return [TextPiece(text)] if text else []
        data = self._hold + text if self._hold else text
        self._hold = ""
        pos, n = 0, len(data)
        while pos < n:
            pos = self._step(data, pos)
        if self._call is not None:
            self._arguments(self._call)
        out, self._out = self._out, []
        return out

    def finish(self) -> list[Piece]:
        if self._fmt == "none":
            return []
        held, self._hold = self._hold, ""
        state, call = self._state, self._call
        if state == TEXT:
            self._text(held if not self._lstrip else held.lstrip(_WS))
            if self._lead:
                self._out.append(TextPiece(self._lead))
                self._lead = ""
        elif call is not None and call.committed:
            self._end_call(call)
        elif state in (NAME, NAME_END) and self._name:
            self._name_only()
        elif not self._region and state in (OPEN, CALL, ARRAY_FIRST, NAME, NAME_END):
            self._text("".join(self._raw) + held)
        self._state, self._call = DROP, None
        out, self._out = self._out, []
        return out

    # --- output ------------------------------------------------------------------------------

    def _text(self, text: str) -> None:
        if not text:
            return
        if self._lead:
            text, self._lead = self._lead + text, ""
        out = self._out
        if out and isinstance(out[-1], TextPiece):
            out[-1] = TextPiece(out[-1].text + text)
        else:
            out.append(TextPiece(text))

    def _named(self, call: CallObject, name: str) -> None:
        """``call`` has a name: it is a call from now on (or not one at all)."""
        if not call.guarded and self._names is not None and name not in self._names:
            call.scanner.state = ERROR
            return
        self._region = True
        self._raw = []
        if self._count and not self._parallel:
            call.commit(None)
            return
        call.commit(self._count)
        self._count += 1
        self._out.append(ToolCallStart(call.index, name))
        self._arguments(call)

    def _arguments(self, call: CallObject, *, final: bool = False) -> None:
        text = call.take_arguments(final=final)
        if text:
            self._out.append(ToolCallArguments(call.index, text))

    def _end_call(self, call: CallObject) -> None:
        self._arguments(call, final=True)
        self._call = None

    # --- the machine -------------------------------------------------------------------------

    def _step(self, data: str, pos: int) -> int:
        state = self._state
        if state == TEXT:
            return self._read_text(data, pos)
        if state == CALL:
            return self._read_call(data, pos)
        if state == DROP:
            return len(data)
        if state in (SKIP, AFTER):
            return self._seek(data, pos)
        if state == NAME:
            return self._read_name(data, pos)
        start = pos
        pos = _skip_ws(data, pos)
        self._keep(data, start, pos)
        if pos == len(data):
            return pos
        return self._after_ws(data, pos)

    def _keep(self, data: str, start: int, end: int) -> None:
        """Text of a call not yet committed: kept to be returned as text if it is none."""
        if not self._region and end > start:
            self._raw.append(data[start:end])

    def _read_text(self, data: str, pos: int) -> int:
        n = len(data)
        marker = self._marker
        if self._start or self._lstrip:
            end = _skip_ws(data, pos)
            if self._start:
                self._lead += data[pos:end]
            pos = end
            if pos == n:
                return n
            self._lstrip = False
            if self._start:
                is_marker = marker is not None and data.startswith(marker, pos)
                if marker and not is_marker and marker.startswith(data[pos:]):
                    self._hold = data[pos:]  # "[" may still become "[TOOL_CALLS]"
                    return n
                self._start = False
                if self._bare and data[pos] == self._bare and not is_marker:
                    self._raw, self._lead = [self._lead], ""
                    return self._open(data, pos, guarded=self._fmt == "forced")
        if marker is None:
            self._text(data[pos:])
            return n
        at = data.find(marker, pos)
        if at < 0:
            cut = held_tail(data, pos, marker)
            self._text(data[pos:cut])
            self._hold = data[cut:]
            return n
        self._text(data[pos:at])
        self._raw, self._lead = [self._lead, marker], ""
        self._region = False
        self._guarded = True
        self._state = OPEN
        return at + len(marker)

    def _open(self, data: str, pos: int, *, guarded: bool) -> int:
        """A bare call at the start of the answer: ``{`` or (mistral) ``[``."""
        self._region = False
        self._guarded = guarded
        if data[pos] == "[":
            self._raw.append("[")
            self._state = ARRAY_FIRST
            return pos + 1
        then = {"llama3_json": SEPARATOR, "hermes": BLOCK}.get(self._fmt, DROP)
        return self._begin_call(pos, then)

    def _begin_call(self, pos: int, then: int) -> int:
        if self._call is None:  # (a ``name[ARGS]`` call exists already)
            self._call = CallObject(self._named, guarded=self._guarded)
        self._then = then
        self._state = CALL
        return pos

    def _read_call(self, data: str, pos: int) -> int:
        call = self._call
        assert call is not None
        end = call.scanner.feed(data, pos)
        self._keep(data, pos, end)
        state = call.scanner.state
        if state == DONE:
            call.arguments_done()
            if call.committed:
                self._end_call(call)
                self._state = self._then
            else:
                return self._no_call(data, end)
        elif state == ERROR:
            return self._no_call(data, end)
        return end

    def _no_call(self, data: str, pos: int) -> int:
        """The JSON is not (or no longer) a call: text if nothing was committed, else the
        rest of this region is dropped (a committed call keeps what it had)."""
        call = self._call
        if call is not None:
            self._end_call(call)
        if not self._region:
            self._text("".join(self._raw))
            self._raw = []
            self._state = TEXT
        else:
            self._state = _BROKEN.get(self._fmt, DROP)
        return pos

    def _after_ws(self, data: str, pos: int) -> int:
        """States that look at the next non-space character."""
        state, c, fmt = self._state, data[pos], self._fmt
        if state == OPEN:
            if c == "{":
                then = BLOCK if fmt == "hermes" else AFTER if fmt == "mistral" else SEPARATOR
                return self._begin_call(pos, then)
            if fmt == "mistral" and c == "[":
                self._keep(data, pos, pos + 1)
                self._state = ARRAY_FIRST
                return pos + 1
            if fmt == "mistral" and _NAME_CHAR.match(c):
                self._name = []
                self._state = NAME
                return pos
            return self._no_call(data, pos)
        if state == BLOCK:
            if data.startswith(_HERMES_END, pos) or _HERMES_END.startswith(data[pos:]):
                return self._seek(data, pos)
            if c == "{":
                return self._begin_call(pos, BLOCK)
            self._state = SKIP
            return pos
        if state in (ARRAY_FIRST, ARRAY_ITEM):
            if c == "{":
                return self._begin_call(pos, ARRAY_NEXT)
            if state == ARRAY_FIRST:
                return self._no_call(data, pos)
            self._state = AFTER
            return pos
        if state == ARRAY_NEXT:
            self._state = ARRAY_ITEM if c == "," else AFTER
            return pos + 1 if c in ",]" else pos
        if state == NAME_END:
            if c == "{":
                if not self._commit_name():
                    return self._no_call(data, pos)
                return self._begin_call(pos, AFTER)
            if self._call is None:  # "[TOOL_CALLS]Hello world": not a call
                return self._no_call(data, pos)
            return self._name_only(data, pos)
        if state == SEPARATOR:
            self._state = NEXT_CALL if c == ";" else DROP
            return pos + 1
        # NEXT_CALL
        if data.startswith("<|python_tag|>", pos):
            return pos + len("<|python_tag|>")
        if c == "{":
            return self._begin_call(pos, SEPARATOR)
        self._state = DROP
        return pos

    def _seek(self, data: str, pos: int) -> int:
        """Dropped text until the end of a hermes block (SKIP, BLOCK) or a new mistral call."""
        marker = _HERMES_END if self._fmt == "hermes" else "[TOOL_CALLS]"
        at = data.find(marker, pos)
        if at < 0:
            self._hold = data[held_tail(data, pos, marker) :]
            return len(data)
        if self._fmt == "hermes":
            self._state, self._lstrip = TEXT, True
        else:
            self._state, self._guarded = OPEN, True
        return at + len(marker)

    # --- mistral ``name[ARGS]{..}`` ----------------------------------------------------------

    def _read_name(self, data: str, pos: int) -> int:
        match = _NAME_RUN.match(data, pos)
        assert match is not None
        end = match.end()
        self._name.append(data[pos:end])
        self._keep(data, pos, end)
        n = len(data)
        if end == n:
            return n
        rest = data[end : end + len("[TOOL_CALLS]")]
        if rest.startswith(_ARGS):
            self._keep(data, end, end + len(_ARGS))
            if not self._commit_name():
                return self._no_call(data, end + len(_ARGS))
            self._state = NAME_END
            return end + len(_ARGS)
        if rest.startswith("[TOOL_CALLS]"):
            return self._name_only(data, end)
        if end + len(rest) == n and (_ARGS.startswith(rest) or "[TOOL_CALLS]".startswith(rest)):
            self._hold = rest
            return n
        if data[end] in _WS or data[end] == "{":
            self._state = NAME_END
            return end
        return self._no_call(data, end)

    def _commit_name(self) -> bool:
        """A ``name[ARGS]`` call: it starts now (its arguments follow)."""
        if self._call is not None:
            return True
        call = CallObject(self._named, guarded=True, arguments_only=True)
        self._named(call, "".join(self._name))
        self._call = call
        return call.committed

    def _name_only(self, data: str = "", pos: int = 0) -> int:
        """A name with no arguments object: a call with ``{}``."""
        if self._commit_name() and self._call is not None:
            self._end_call(self._call)
        self._call = None
        self._state = AFTER
        return pos


def may_hold_calls(text: str, fmt: Format) -> bool:
    """False when ``text`` surely holds no call (no marker, no bare start): parsing is skipped."""
    marker, bare = _MARKER.get(fmt), _BARE.get(fmt)
    return (marker is not None and marker in text) or bool(bare and text.lstrip(_WS)[:1] == bare)
