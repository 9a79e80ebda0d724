"""A chat or completions request on a rendered protocol (TGI, pipelines), ready to send: what
``shim.serve.generation`` sends and ``shim.serve.rendered_streams`` translates the stream of.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shim.adapters import TextGeneration
from shim.adapters._params import GenerationParams
from shim.discovery import TokenCounter
from shim.route import Route
from shim.serve.answers import Reading
from shim.serve.formats import Format
from shim.templates import ChatTemplate


@dataclass(slots=True, kw_only=True)
class Job:
    """One chat or completions request on one route, ready to send."""

    route: Route
    adapter: TextGeneration
    template: ChatTemplate | None
    params: GenerationParams
    prompts: list[str]
    fmt: Format
    stream: bool
    include_usage: bool
    # The model's tokenizer, once learned: counts what the upstream does not (else estimated).
    tokenizer: TokenCounter | None
    # How tool calls and reasoning are read from the answer (None: plain text; chat only).
    reading: Reading | None = None
    # The client's stop sequences, then the model's (template end-of-turn, config): built once.
    stops: list[str] = field(init=False)

    def __post_init__(self) -> None:
        template_stops = self.template.stop if self.template is not None else ()
        self.stops = [*self.params.stop, *template_stops, *self.route.config.stop]
