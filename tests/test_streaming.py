"""SSE parsing (chunk splits, `data:` with or without space, comments, [DONE]) and stop scanning."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shim.adapters._stop import StopScanner, truncate_at_stop
from shim.upstream.sse import iter_sse_data


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def parse(*parts: bytes) -> list[bytes]:
    return [data async for data in iter_sse_data(_chunks(*parts))]


CASES = [
    pytest.param(
        [b'data:{"a":1}\n\ndata:{"a":2}\n\n'], [b'{"a":1}', b'{"a":2}'], id="no-space-tgi2"
    ),
    pytest.param([b'data: {"a":1}\n\n'], [b'{"a":1}'], id="with-space"),
    pytest.param([b'data: {"a"', b":1}\n", b"\n"], [b'{"a":1}'], id="split-across-chunks"),
    pytest.param([b'data: {"a":1}\r\n\r\n'], [b'{"a":1}'], id="crlf"),
    pytest.param([b": keep-alive\n\ndata: x\n\n"], [b"x"], id="comment"),
    pytest.param([b"event: message\nid: 3\ndata: x\n\n"], [b"x"], id="other-fields"),
    pytest.param([b"data: a\ndata: b\n\n"], [b"a\nb"], id="multi-line-data"),
    pytest.param([b"data: x\n\ndata: [DONE]\n\ndata: after\n\n"], [b"x"], id="done-stops"),
    pytest.param([b"data: last-without-blank-line"], [b"last-without-blank-line"], id="eof-flush"),
    pytest.param([b"\n\n\n"], [], id="only-blank"),
    pytest.param([b"data:[DONE]\n\n"], [], id="done-no-space"),
]


@pytest.mark.parametrize(("parts", "expected"), CASES)
async def test_iter_sse_data(parts: list[bytes], expected: list[bytes]) -> None:
    assert await parse(*parts) == expected


async def test_byte_by_byte_split() -> None:
    raw = b'data:{"x":1}\n\n: ping\n\ndata: {"x":2}\n\n'
    assert await parse(*(raw[i : i + 1] for i in range(len(raw)))) == [b'{"x":1}', b'{"x":2}']


@pytest.mark.parametrize(
    ("text", "stops", "expected"),
    [
        ("hello<|im_end|>junk", ["<|im_end|>"], ("hello", True)),
        ("a STOP b END", ["END", "STOP"], ("a ", True)),
        ("nothing", ["x"], ("nothing", False)),
        ("x", [""], ("x", False)),
    ],
)
def test_truncate_at_stop(text: str, stops: list[str], expected: tuple[str, bool]) -> None:
    assert truncate_at_stop(text, stops) == expected


@pytest.mark.parametrize(
    ("pieces", "stops", "emitted", "stopped"),
    [
        (["Hel", "lo", "<|im", "_end|>", "more"], ["<|im_end|>"], "Hello", True),
        (["a<", "b"], ["<|x|>"], "a<b", False),
        (["ab", "cSTO", "P!"], ["STOP"], "abc", True),
        (["plain", " text"], [], "plain text", False),
        (["<|", "im_", "start"], ["<|im_end|>"], "<|im_start", False),
    ],
    ids=["marker-split", "false-prefix", "stop-mid-chunk", "no-stops", "held-then-flushed"],
)
def test_stop_scanner(pieces: list[str], stops: list[str], emitted: str, stopped: bool) -> None:
    scanner = StopScanner(stops)
    out = "".join(scanner.feed(p) for p in pieces) + scanner.flush()
    assert (out, scanner.stopped) == (emitted, stopped)


def test_stop_scanner_emits_early_when_safe() -> None:
    scanner = StopScanner(["</s>"])
    assert scanner.feed("Hello") == "Hello"
    assert scanner.feed(" wor<") == " wor"
    assert scanner.feed("/") == ""
    assert scanner.feed("x") == "</x"
