"""Tool calls in a model's text, as it streams (``ToolCallParser``; a whole answer is the same
machine fed once: ``_answer.parse_answer``, so both always agree): the steps each family takes
after its marker and between its calls (hermes blocks, mistral arrays and ``name[ARGS]{..}``,
Llama's ``;``), over the streaming machine of ``_tool_scan``. The formats: ``_tool_formats``.
"""

from __future__ import annotations

from shim.adapters._stop import held_tail
from shim.adapters._tool_call import CallObject
from shim.adapters._tool_formats import (
    AFTER,
    AFTER_MARKED,
    ARGS,
    ARRAY_FIRST,
    ARRAY_ITEM,
    ARRAY_NEXT,
    BLOCK,
    DROP,
    HERMES_END,
    NAME,
    NAME_CHAR,
    NAME_END,
    NAME_RUN,
    NEXT_CALL,
    OPEN,
    SEPARATOR,
    SKIP,
    TEXT,
    WS,
)
from shim.adapters._tool_scan import CallScanner


class ToolCallParser(CallScanner):
    """One per answer: ``feed`` text as it arrives, ``finish`` at its end; each returns pieces."""

    def _after_ws(self, data: str, pos: int) -> int:
        """States that look at the next non-space character."""
        state, c, fmt = self._state, data[pos], self._fmt
        if state == OPEN:
            if c == "{":
                return self._begin_call(pos, AFTER_MARKED.get(fmt, SEPARATOR))
            if fmt == "mistral" and c == "[":
                self._keep(data, pos, pos + 1)
                self._state = ARRAY_FIRST
                return pos + 1
            if fmt == "mistral" and NAME_CHAR.match(c):
                self._name = []
                self._state = NAME
                return pos
            return self._no_call(data, pos)
        if state == BLOCK:
            if data.startswith(HERMES_END, pos) or HERMES_END.startswith(data[pos:]):
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
        marker = HERMES_END if self._fmt == "hermes" else "[TOOL_CALLS]"
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
        match = NAME_RUN.match(data, pos)
        assert match is not None
        end = match.end()
        self._name.append(data[pos:end])
        self._keep(data, pos, end)
        n = len(data)
        if end == n:
            return n
        rest = data[end : end + len("[TOOL_CALLS]")]
        if rest.startswith(ARGS):
            self._keep(data, end, end + len(ARGS))
            if not self._commit_name():
                return self._no_call(data, end + len(ARGS))
            self._state = NAME_END
            return end + len(ARGS)
        if rest.startswith("[TOOL_CALLS]"):
            return self._name_only(data, end)
        if end + len(rest) == n and (ARGS.startswith(rest) or "[TOOL_CALLS]".startswith(rest)):
            self._hold = rest
            return n
        if data[end] in WS or data[end] == "{":
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
