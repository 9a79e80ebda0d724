"""One tool-call object, ``{"name": .., "arguments": {..}}``, read as its JSON arrives: it says
when its name is known and hands out its arguments as compact JSON text, piece by piece.

``arguments`` may also be written ``parameters`` (Llama 3), as a string holding JSON (some
fine-tunes; TGI before 3.2), as null or be missing (``{}``). Only an object streams as it
arrives; the other forms are complete before they are sent.
"""

from __future__ import annotations

from collections.abc import Callable

from shim.adapters._json_stream import ERROR, JsonScanner, compact, decode_string

# The keys a call object may have; bare JSON (no marker) with another key is not a call.
CALL_KEYS = frozenset({"name", "arguments", "parameters", "type"})


class CallObject:
    """Feed its ``scanner``; ``on_name(call, name)`` runs once the name is read and may
    ``commit`` the call (it then has an ``index``) or reject it (``scanner.state = ERROR``)."""

    __slots__ = (
        "_args_at",
        "_args_end",
        "_emitted",
        "_member",
        "_name_at",
        "_on_name",
        "_reading",
        "_sent",
        "committed",
        "guarded",
        "index",
        "scanner",
        "silent",
    )

    def __init__(
        self,
        on_name: Callable[[CallObject, str], None],
        *,
        guarded: bool,
        arguments_only: bool = False,
    ) -> None:
        self._on_name = on_name
        self.guarded = guarded  # behind a marker: any object with a name is a call
        # ``arguments_only``: the JSON is the arguments object itself (``name[ARGS]{..}``).
        self.scanner = JsonScanner(None if arguments_only else self)
        self._member = ""
        self._reading = ""
        self._name_at = -1
        self._args_at = 0 if arguments_only else -1
        self._args_end = -1
        self._sent = -1
        self._emitted = False
        self.committed = False
        self.silent = False  # a call past the first when parallel calls are off: never sent
        self.index = -1

    def commit(self, index: int | None) -> None:
        """It is a call (``index``), or one that is read but not sent (None)."""
        self.committed = True
        if index is None:
            self.silent = True
        else:
            self.index = index

    # --- what the scanner tells (MemberListener) ---

    def key(self, key: str) -> None:
        self._member = key
        if not self.committed and not self.guarded and key not in CALL_KEYS:
            self.scanner.state = ERROR

    def value_start(self, at: int) -> None:
        member = self._member
        if member == "name" and self._name_at < 0:
            self._name_at, self._reading = at, "name"
        elif member in ("arguments", "parameters") and self._args_at < 0:
            self._args_at, self._reading = at, "arguments"
        else:
            self._reading = ""

    def value_end(self, at: int) -> None:
        reading, self._reading = self._reading, ""
        if reading == "name":
            raw = "".join(self.scanner.out[self._name_at : at])
            name = decode_string(raw) if raw.startswith('"') else None
            if name:
                self._on_name(self, name)
            else:
                self.scanner.state = ERROR
        elif reading == "arguments":
            self._args_end = at

    # --- the arguments, as text ---

    def arguments_done(self) -> None:
        """An ``arguments_only`` object has ended."""
        if self._args_end < 0:
            self._args_end = len(self.scanner.out)

    def take_arguments(self, *, final: bool = False) -> str:
        """The argument text not handed out yet (``final``: at the call's end, ``{}`` if it had
        none); "" before the call is committed."""
        if not self.committed or self.silent:
            return ""
        text = self._take()
        if final and not text and not self._emitted:
            text = "{}"
        if text:
            self._emitted = True
        return text

    def _take(self) -> str:
        out, at = self.scanner.out, self._args_at
        if at < 0 or len(out) <= at:
            return ""
        if out[at] == "{":
            upto = self._args_end if self._args_end >= 0 else len(out)
            start = self._sent if self._sent >= 0 else at
            self._sent = max(upto, start)
            return "".join(out[start:upto])
        if self._args_end < 0 or self._emitted:
            return ""
        return _settled("".join(out[at : self._args_end]))


def _settled(raw: str) -> str:
    """Arguments that are not an object: a string holding JSON, null, or another value."""
    if raw.startswith('"'):
        text = decode_string(raw)
        if text is None or not text.strip():
            return "{}"
        return compact(text) or text
    return "{}" if raw == "null" else raw
