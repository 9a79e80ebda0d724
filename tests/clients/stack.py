"""The stack real clients talk to: the fake HF upstream and shim, each on a real loopback port.

``running_stack()`` serves ``FakeHF`` (its ``asgi``, through a function that delegates to the
stack's current fake, so ``Stack.reset()`` can swap it) and shim on it
(``serve_asgi(create_app(config))`` with the real aiohttp transport), configured with the
models below: one per upstream protocol, plus embeddings, rerank and a model that answers
"loading".
(uvicorn takes a bound method such as ``fake.asgi`` for ASGI2 unless told ``interface="asgi3"``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry

from shim.app import create_app
from shim.config import Config
from tests.conftest import make_config, serve_asgi
from tests.fake_hf import TOKENS, FakeHF

#: What the fake answers on every protocol ("Hello from TGI!").
ANSWER = "".join(TOKENS)
#: A public model id with a "/" in it (served by the HF router's OpenAI API).
ROUTER_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
#: A serverless feature-extraction pipeline, also with a "/" in its id.
PIPELINE_EMBED_MODEL = "BAAI/bge-small-en-v1.5"

#: One chat model per protocol shim speaks upstream.
CHAT_MODELS = {
    "tgi": "tgi",  # TGI /generate, /generate_stream
    "pipeline": "pipe",  # inference-toolkit pipeline POST / (cannot stream: shim fakes it)
    "text2text": "t5",  # serverless text2text pipeline
    "openai": "vllm",  # an OpenAI-speaking upstream (vLLM, TGI's /v1)
    "router": ROUTER_MODEL,  # the HF router's OpenAI API
}

MODELS = f"""
[huggingface]
token = "hf_test_token_abcdef"
base_url = "{{fake}}"
hub_url = "{{fake}}/hub"

[models.tgi]
task = "text-generation"
url = "{{fake}}/tgi"
chat_template = "chatml"
retries = 0

[models.pipe]
task = "text-generation"
url = "{{fake}}/pipe"
protocol = "pipeline"
chat_template = "zephyr"
retries = 0

# A pipeline whose template renders tools (the chatml built-in, Hermes/Qwen2.5 style).
[models.pipe-chatml]
task = "text-generation"
url = "{{fake}}/pipe-chatml"
protocol = "pipeline"
chat_template = "chatml"
retries = 0

[models.t5]
task = "text2text-generation"
hf_model = "google/flan-t5-small"
retries = 0

[models."{ROUTER_MODEL}"]
task = "text-generation"
hf_model = "{ROUTER_MODEL}"
retries = 0

[models.vllm]
task = "text-generation"
url = "{{fake}}/vllm/v1"
protocol = "openai"
hf_model = "served-name"
retries = 0

# Answers 503 + Retry-After at once (no waiting in shim) while the upstream is loading.
[models.loading]
task = "text-generation"
url = "{{fake}}/loading"
chat_template = "chatml"
retries = 0
wait_for_model = 0

# A TGI whose first token may be slow; 504 after 0.3 s.
[models.slow]
task = "text-generation"
url = "{{fake}}/slow"
chat_template = "chatml"
retries = 0
timeout = 0.3
first_token_timeout = 0.3

[models.embed]
task = "feature-extraction"
url = "{{fake}}/tei"
protocol = "tei"
max_batch_size = 4
retries = 0

[models."{PIPELINE_EMBED_MODEL}"]
task = "feature-extraction"
hf_model = "{PIPELINE_EMBED_MODEL}"
retries = 0

[models.oai-embed]
task = "feature-extraction"
url = "{{fake}}/vllm/v1"
protocol = "openai"
hf_model = "served-embed"
retries = 0

# Rerank: TEI (/info's batch limit of 4 applies) and a vLLM-style /v1/rerank.
[models.rerank]
task = "text-ranking"
url = "{{fake}}/tei"
retries = 0

[models.rerank-vllm]
task = "text-ranking"
url = "{{fake}}/vllm/v1"
protocol = "openai"
hf_model = "served-reranker"
retries = 0
"""

# A reasoning model on TGI: its inline template (ChatML that drops the thinking of earlier
# assistant turns, as Qwen3's does) shows `</think>`, so reasoning_parser "auto" reads <think>.
MODELS += """
[models.tgi-think]
task = "text-generation"
url = "{fake}/tgi-think"
chat_template = '''{% for message in messages %}{% set content = message['content'] %}\
{% if message['role'] == 'assistant' and '</think>' in content %}\
{% set content = content.split('</think>')[-1].lstrip() %}{% endif %}\
{{ '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}'''
retries = 0
"""
#: What the fake's reasoning model answers (with ``REASONING_TOKENS``), thinking then ANSWER.
REASONING = "I should greet."
REASONING_TOKENS = ["<thi", "nk>", "I should", " greet.", "</th", "ink>", "\n\n", *TOKENS]

#: Chat models whose chat template renders tools, one per rendered protocol (tool calling).
TOOL_MODELS = {"tgi": "tgi", "pipeline": "pipe-chatml"}


def state_toml(directory: Path) -> str:
    """A ``[state]`` table keeping stored responses in a SQLite file under ``directory``
    (the default backend, never the user's data directory), or nothing while shim's config
    has no ``[state]`` (before the Responses API existed)."""
    if "state" not in Config.__struct_fields__:
        return ""
    return f'\n[state]\nbackend = "sqlite"\npath = "{directory / "state.db"}"\n'


#: Client keys: any model; `tgi` only; one request per minute.
GOOD_KEY = "sk-shim-good"
TGI_ONLY_KEY = "sk-shim-tgi-only"
LIMITED_KEY = "sk-shim-limited"
KEYS = f"""
api_keys = ["{GOOD_KEY}"]

[[server.keys]]
key = "{TGI_ONLY_KEY}"
name = "tgi-only"
models = ["tgi"]

[[server.keys]]
key = "{LIMITED_KEY}"
name = "limited"
rpm = 1
"""


@dataclass
class Stack:
    #: The fake upstream; ``reset()`` swaps in a fresh one (no scripts, nothing seen).
    fake: FakeHF
    fake_url: str
    #: shim's root, e.g. ``http://127.0.0.1:PORT`` (clients use ``api``).
    url: str
    config: Config

    @property
    def api(self) -> str:
        return f"{self.url}/v1"

    def reset(self) -> Stack:
        self.fake = FakeHF()
        return self

    def upstream_calls(self, path: str) -> int:
        """Requests the fake upstream received on ``path``."""
        return len(self.fake.requests(path))


@contextlib.asynccontextmanager
async def running_stack(
    server: str = "", *, models: str = MODELS, state: Path | None = None
) -> AsyncIterator[Stack]:
    """The fake and shim, both on real loopback ports; ``server`` is extra ``[server]`` TOML,
    ``models`` the rest (``{fake}`` stands for the fake's URL); stored responses go under
    ``state`` (``state_toml``)."""
    if state is not None:
        models += state_toml(state)
    stack: Stack | None = None

    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        fake = stack.fake if stack is not None else FakeHF()
        await fake.asgi(scope, receive, send)

    async with serve_asgi(upstream) as fake_url:
        config = make_config(models.replace("{fake}", fake_url), server=server)
        # transport=None: the real aiohttp transport, over real sockets.
        app = create_app(config, registry=CollectorRegistry())
        async with serve_asgi(app) as url:
            stack = Stack(FakeHF(), fake_url, url, config)
            yield stack


P = ParamSpec("P")
R = TypeVar("R")


def bounded(
    seconds: float = 20.0,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Fail an async test that runs longer than ``seconds`` (instead of hanging CI)."""

    def decorate(test: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(test)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            return await asyncio.wait_for(test(*args, **kwargs), seconds)

        return run

    return decorate
