"""The Responses API with Node.js clients (``tests/clients/node/responses.test.mjs``): the Vercel
AI SDK's default ``openai(...)`` model (``generateText`` / ``streamText``: plain on every
protocol, a tool round trip on an ``openai`` upstream; on rendered protocols in
``test_responses_tools``) and the openai SDK's ``responses``. Needs Node.js, as
``test_node_sdk``."""

from __future__ import annotations

import pytest

from tests.clients.node_sdk import NODE_TIMEOUT, ensure_node_sdk, run_node_tests
from tests.clients.stack import GOOD_KEY, Stack, bounded
from tests.fake_model import ToolModel

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def node() -> str:
    return ensure_node_sdk()


@bounded(NODE_TIMEOUT + 10)
async def test_responses_node(node: str, keyed: Stack) -> None:
    keyed.fake.model = ToolModel(arguments={"get_weather": {"city": "Paris"}})
    await run_node_tests(node, "responses.test.mjs", base_url=keyed.api, api_key=GOOD_KEY)
