"""The streaming machine that finds tool calls in a model's text (``CallScanner``): text and
markers, call objects read as their JSON arrives, text returned for JSON that is no call. The
steps only a family takes (after a marker, between calls) are ``_tool_parser``'s; the formats
are ``_tool_formats``.

``arguments`` is the model's JSON for them without insignificant whitespace (a compact encoding
of the same object), so streamed pieces concatenate to exactly the final string. A call starts
(``ToolCallStart``) once its name is read; before that nothing of it is sent, and JSON that
turns out not to be a call is returned as the text it was. A call cut off after its start keeps
the arguments read so far (as OpenAI's own calls cut by ``length``). Bare JSON (no marker) is a
call only if its keys are call keys and, when ``names`` is given, its name is one of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection

from shim.adapters._json_stream import DONE, ERROR
from shim.adapters._result import Piece, TextPiece, ToolCallArguments, ToolCallStart
from shim.adapters._stop import held_tail
from shim.adapters._tool_call import CallObject
from shim.adapters._tool_formats import (
    AFTER,
    AFTER_BARE,
    ARRAY_FIRST,
    BARE,
    BROKEN,
    CALL,
    DROP,
    MARKER,
    NAME,
    NAME_END,
    OPEN,
    SKIP,
    TEXT,
    WS,
    Format,
    skip_ws,
)


class CallScanner(ABC):
    """``ToolCallParser`` without its families' steps (the abstract methods at the end)."""

    def __init__(
        self, fmt: Format, *, names: Collection[str] | None = None, parallel: bool = True
    ) -> None:
        self._fmt = fmt
        self._marker = MARKER.get(fmt)
        self._bare = BARE.get(fmt, "")
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
            self._text(held if not self._lstrip else held.lstrip(WS))
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
        pos = skip_ws(data, pos)
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
            end = skip_ws(data, pos)
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
        then = AFTER_BARE.get(self._fmt, DROP)
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
            self._state = BROKEN.get(self._fmt, DROP)
        return pos

    # --- the families' steps (``_tool_parser``) ------------------------------------------------

    @abstractmethod
    def _after_ws(self, data: str, pos: int) -> int:
        """States that look at the next non-space character."""

    @abstractmethod
    def _seek(self, data: str, pos: int) -> int:
        """Dropped text until a family's next marker (SKIP, AFTER)."""

    @abstractmethod
    def _read_name(self, data: str, pos: int) -> int:
        """A call's bare name (NAME: mistral's ``name[ARGS]``)."""

    @abstractmethod
    def _name_only(self, data: str = "", pos: int = 0) -> int:
        """A name with no arguments object, at the end of the answer or of its call."""
