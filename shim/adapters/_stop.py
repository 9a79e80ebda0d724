"""Stop sequences applied in shim: TGI keeps the stop text, pipelines cannot stop at all.

OpenAI removes the stop sequence from the answer; ``truncate_at_stop`` does that for a whole
text, ``StopScanner`` for a stream, holding back just enough characters to never emit a prefix
of a stop sequence that the next chunk completes.
"""

from __future__ import annotations

from collections.abc import Sequence


def truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop sequence; return (text, whether one was found)."""
    cut = -1
    for stop in stops:
        if stop:
            at = text.find(stop)
            if at != -1 and (cut == -1 or at < cut):
                cut = at
    return (text, False) if cut == -1 else (text[:cut], True)


class StopScanner:
    """Feed stream text in; get out only text that can no longer become part of a stop."""

    __slots__ = ("_buffer", "_firsts", "_hold", "_stops", "stopped")

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        # A held-back tail must start with the first character of some stop.
        self._firsts = frozenset(s[0] for s in self._stops)
        self._buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        if not self._stops:
            return text
        buffer = self._buffer + text if self._buffer else text
        for first in self._firsts:
            if first in buffer:
                break
        else:
            # No stop's first character in sight (the usual chunk): nothing to find or hold.
            self._buffer = ""
            return buffer
        head, found = truncate_at_stop(buffer, self._stops)
        if found:
            self.stopped = True
            self._buffer = ""
            return head
        cut = len(buffer)
        # Hold back the shortest tail that is still the beginning of some stop sequence.
        firsts = self._firsts
        for i in range(max(0, len(buffer) - self._hold), len(buffer)):
            if buffer[i] in firsts:
                tail = buffer[i:]
                if any(s.startswith(tail) for s in self._stops):
                    cut = i
                    break
        self._buffer = buffer[cut:]
        return buffer[:cut]

    def flush(self) -> str:
        out, self._buffer = ("" if self.stopped else self._buffer), ""
        return out


def held_tail(data: str, pos: int, marker: str) -> int:
    """Where the shortest tail of ``data[pos:]`` that could begin ``marker`` starts (else the
    end): the text a stream must hold back until the next chunk tells."""
    n = len(data)
    for i in range(max(pos, n - len(marker) + 1), n):
        if data[i] == marker[0] and marker.startswith(data[i:]):
            return i
    return n
