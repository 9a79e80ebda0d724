"""How each model family writes its tool calls: the markers, what a bare call starts with, the
parser's states and where each format goes after a call. ``_tool_scan`` is the streaming
machine over them, ``_tool_parser`` the families' own steps.

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
"""

from __future__ import annotations

import re
from typing import Literal

from shim.config import ToolParser

#: A configured parser, or ``forced``: the answer was written under a grammar that makes it one
#: ``{"name", "arguments"}`` object (``_tools.tool_grammar``).
Format = Literal[ToolParser, "forced"]

WS = " \t\n\r"
#: The marker a call (or a region of calls) starts with.
MARKER: dict[str, str] = {
    "hermes": "<tool_call>",
    "mistral": "[TOOL_CALLS]",
    "llama3_json": "<|python_tag|>",
}
#: The special tokens each format reads (TGI drops special tokens' text unless told to keep it).
SPECIAL_TOKENS: dict[str, frozenset[str]] = {
    "hermes": frozenset({"<tool_call>", "</tool_call>"}),
    "mistral": frozenset({"[TOOL_CALLS]", "[ARGS]"}),
    "llama3_json": frozenset({"<|python_tag|>"}),
}
# What an answer that is nothing but a call starts with, marker or not.
# (Servers that skip special tokens drop the markers of models that made them special.)
BARE = {"hermes": "{", "mistral": "[", "llama3_json": "{", "json": "{", "forced": "{"}
HERMES_END = "</tool_call>"
ARGS = "[ARGS]"
NAME_RUN = re.compile(r"[A-Za-z0-9_.\-]*")
NAME_CHAR = re.compile(r"[A-Za-z0-9_.\-]")

# Parser states.
(TEXT, OPEN, CALL, BLOCK, SKIP, ARRAY_FIRST, ARRAY_NEXT, ARRAY_ITEM) = range(8)
(NAME, NAME_END, SEPARATOR, NEXT_CALL, AFTER, DROP) = range(8, 14)
#: Where a region goes once a call in it broke: the rest of the block, or of the answer.
BROKEN = {"hermes": SKIP, "mistral": AFTER}
#: What follows a bare call at the start of the answer (else the answer ends with it).
AFTER_BARE = {"llama3_json": SEPARATOR, "hermes": BLOCK}
#: What follows a call after the marker (else ``SEPARATOR``: Llama's ``;``).
AFTER_MARKED = {"hermes": BLOCK, "mistral": AFTER}


def skip_ws(data: str, pos: int) -> int:
    n = len(data)
    while pos < n and data[pos] in WS:
        pos += 1
    return pos


def may_hold_calls(text: str, fmt: Format) -> bool:
    """False when ``text`` surely holds no call (no marker, no bare start): parsing is skipped."""
    marker, bare = MARKER.get(fmt), BARE.get(fmt)
    return (marker is not None and marker in text) or bool(bare and text.lstrip(WS)[:1] == bare)
