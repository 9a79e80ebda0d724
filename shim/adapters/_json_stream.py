"""An incremental JSON scanner: one value, fed in pieces split anywhere, validated as it
arrives and copied without insignificant whitespace.

Tool calls are streamed from it: the compact copy of a call's ``arguments`` grows as text
arrives, so what was sent is always a prefix of the final string. Grammar: RFC 8259.
"""

from __future__ import annotations

import re
from typing import Protocol

import msgspec

_WS = frozenset(" \t\n\r")
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# What ends a run of ordinary string characters.
_STRING_SPECIAL = re.compile(r'["\\\x00-\x1f]')
_ESCAPES = frozenset('"\\/bfnrtu')
_HEX = frozenset("0123456789abcdefABCDEF")
_LITERALS = {"t": "true", "f": "false", "n": "null"}
_string = msgspec.json.Decoder(str)

# Scanner states.
VALUE, OBJECT_FIRST, OBJECT_KEY, COLON, ARRAY_FIRST, AFTER = range(6)
STRING, ESCAPE, UNICODE, NUMBER, LITERAL, DONE, ERROR = range(6, 13)


class MemberListener(Protocol):
    """Told about the members of the top-level object (offsets index ``JsonScanner.out``)."""

    def key(self, key: str) -> None: ...

    def value_start(self, at: int) -> None: ...

    def value_end(self, at: int) -> None: ...


class JsonScanner:
    """Scans one JSON value; ``out`` is its compact copy so far, ``state`` is ``DONE`` once
    the value is complete and ``ERROR`` once it cannot be JSON any more."""

    __slots__ = ("_hex", "_key_at", "_listener", "_literal", "_number_at", "_stack", "out", "state")

    def __init__(self, listener: MemberListener | None = None) -> None:
        self.out: list[str] = []
        self.state = VALUE
        self._stack: list[str] = []  # "{" or "[" per open container
        self._listener = listener
        self._literal = ""  # the rest of true/false/null still expected
        self._number_at = 0
        self._key_at = -1  # where the key being read starts in `out`; -1: a string value
        self._hex = 0

    def feed(self, text: str, pos: int = 0) -> int:
        """Consume ``text[pos:]`` until the value ends or turns invalid; return where it
        stopped (a character that ended a number or broke the JSON is not consumed)."""
        n = len(text)
        out = self.out
        while pos < n and self.state < DONE:
            state = self.state
            c = text[pos]
            if state == STRING:
                match = _STRING_SPECIAL.search(text, pos)
                end = match.start() if match else n
                if end > pos:
                    out.extend(text[pos:end])
                    pos = end
                elif c == '"':
                    out.append(c)
                    pos += 1
                    self._string_end()
                elif c == "\\":
                    out.append(c)
                    pos += 1
                    self.state = ESCAPE
                else:
                    self.state = ERROR  # a raw control character
            elif state == ESCAPE:
                if c not in _ESCAPES:
                    self.state = ERROR
                else:
                    out.append(c)
                    pos += 1
                    self.state, self._hex = (UNICODE, 0) if c == "u" else (STRING, 0)
            elif state == UNICODE:
                if c not in _HEX:
                    self.state = ERROR
                else:
                    out.append(c)
                    pos += 1
                    self._hex += 1
                    if self._hex == 4:
                        self.state = STRING
            elif state == NUMBER:
                if c in _NUMBER_CHARS:
                    out.append(c)
                    pos += 1
                else:
                    self._number_end()  # the character is read again in the next state
            elif state == LITERAL:
                if c != self._literal[0]:
                    self.state = ERROR
                else:
                    out.append(c)
                    pos += 1
                    self._literal = self._literal[1:]
                    if not self._literal:
                        self._value_end()
            elif c in _WS:
                pos += 1
            else:
                self._structural(c)
                if self.state != ERROR:
                    pos += 1
        return pos

    def finish(self) -> None:
        """End of input: a top-level number is complete; anything else unfinished is an error."""
        if self.state == NUMBER:
            self._number_end()
        if self.state != DONE:
            self.state = ERROR

    # --- transitions -------------------------------------------------------------------------

    def _structural(self, c: str) -> None:
        state = self.state
        stack = self._stack
        if state == VALUE or (state == ARRAY_FIRST and c != "]"):
            self._value_start(c)
        elif state in (OBJECT_FIRST, OBJECT_KEY) and c == '"':
            self._key_at = len(self.out)
            self.out.append(c)
            self.state = STRING
        elif (state == OBJECT_FIRST and c == "}") or (state == ARRAY_FIRST and c == "]"):
            self.out.append(c)
            stack.pop()
            self._value_end()
        elif state == COLON and c == ":":
            self.out.append(c)
            self.state = VALUE
        elif state == AFTER and c == ",":
            self.out.append(c)
            self.state = OBJECT_KEY if stack[-1] == "{" else VALUE
        elif state == AFTER and c == ("}" if stack[-1] == "{" else "]"):
            self.out.append(c)
            stack.pop()
            self._value_end()
        else:
            self.state = ERROR

    def _value_start(self, c: str) -> None:
        if self._listener is not None and self._stack == ["{"]:
            self._listener.value_start(len(self.out))
        if c in "{[":
            self.out.append(c)
            self._stack.append(c)
            self.state = OBJECT_FIRST if c == "{" else ARRAY_FIRST
        elif c == '"':
            self.out.append(c)
            self._key_at = -1
            self.state = STRING
        elif c == "-" or c.isdigit():
            self._number_at = len(self.out)
            self.out.append(c)
            self.state = NUMBER
        elif c in _LITERALS:
            self.out.append(c)
            self._literal = _LITERALS[c][1:]
            self.state = LITERAL
        else:
            self.state = ERROR

    def _string_end(self) -> None:
        if self._key_at < 0:
            self._value_end()
            return
        self.state = COLON
        if self._listener is not None and len(self._stack) == 1:
            raw = "".join(self.out[self._key_at :])
            self._listener.key(decode_string(raw) or "")

    def _number_end(self) -> None:
        if _NUMBER.fullmatch("".join(self.out[self._number_at :])) is None:
            self.state = ERROR
        else:
            self._value_end()

    def _value_end(self) -> None:
        stack = self._stack
        if not stack:
            self.state = DONE
            return
        self.state = AFTER
        if self._listener is not None and stack == ["{"]:
            self._listener.value_end(len(self.out))


def decode_string(raw: str) -> str | None:
    """A complete JSON string literal (quotes included) as text; None for one that escapes a
    lone surrogate (valid to the scanner, not decodable)."""
    try:
        return _string.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def compact(text: str) -> str | None:
    """``text`` as one JSON value without insignificant whitespace, or None if it is not one."""
    scanner = JsonScanner()
    end = scanner.feed(text)
    scanner.finish()
    if scanner.state != DONE or text[end:].strip(" \t\n\r"):
        return None
    return "".join(scanner.out)
