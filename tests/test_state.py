"""The response store, one table of behaviour over its three backends (a real redis-server
for Redis), plus what is particular to each and the ``[state]`` config."""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openai
import pytest
import redis.asyncio
from openai.types.responses import ResponseItemList

from shim.config import ConfigError, StateConfig
from shim.errors import InvalidRequestError
from shim.loader import parse_config
from shim.openai import responses as rs
from shim.state import SHARED_OWNER, ResponseStore, open_state, page_items
from shim.state import redis as shared
from shim.state.memory import SWEEP_INTERVAL, MemoryStore
from shim.state.sqlite import SQLiteStore
from tests.redis_server import redis_server

TTL = 3600.0
_prefixes = itertools.count()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def prefix() -> str:
    # Each test has its own keys on the one server.
    return f"test{next(_prefixes)}:"


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, prefix: str
) -> AsyncIterator[ResponseStore]:
    made: ResponseStore
    if request.param == "memory":
        made = MemoryStore(ttl=TTL, clock=clock)
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "state.db", ttl=TTL, clock=clock)
    else:
        client = redis.asyncio.Redis.from_url(request.getfixturevalue("redis_url"))
        made = shared.RedisStore(client, prefix=prefix, ttl=TTL, clock=clock)
    yield made
    await made.aclose()
    if request.param == "redis":
        await client.aclose()


def _response(rid: str = "resp_1", text: str = "Paris.") -> rs.Response:
    message = rs.Message(id=f"msg_{rid}", role="assistant", content=[rs.OutputText(text)])
    return rs.Response(
        id=rid, created_at=1, status="completed", model="m", output=[message], metadata={"k": "v"}
    )


def _items(n: int) -> list[rs.Item]:
    return [
        rs.Message(id=f"msg_{i}", role="user", content=[rs.InputText(f"q{i}")]) for i in range(n)
    ]


async def test_a_saved_response_comes_back_whole(store: ResponseStore) -> None:
    call = rs.FunctionCall(id="fc_1", call_id="call_1", name="f", arguments="{}")
    items = [*_items(1), call, rs.FunctionCallOutput(id="fco_1", call_id="call_1", output="4")]
    await store.save(_response(), items, owner="team-a")
    record = await store.get("resp_1", owner="team-a")
    assert record is not None
    assert (record.response, record.input_items, record.owner) == (_response(), items, "team-a")
    assert record.context() == [*items, *_response().output]


async def test_other_owners_and_unknown_ids_find_nothing(store: ResponseStore) -> None:
    await store.save(_response(), _items(1), owner="team-a")
    assert await store.get("resp_1", owner="team-b") is None
    assert await store.get("resp_1", owner=SHARED_OWNER) is None
    assert await store.get("resp_2", owner="team-a") is None
    assert await store.list_input_items("resp_1", owner="team-b") is None


async def test_delete(store: ResponseStore) -> None:
    await store.save(_response(), _items(1), owner="team-a")
    assert await store.delete("resp_1", owner="team-b") is False
    assert await store.get("resp_1", owner="team-a") is not None
    assert await store.delete("resp_1", owner="team-a") is True
    assert await store.get("resp_1", owner="team-a") is None
    assert await store.delete("resp_1", owner="team-a") is False


async def test_a_response_expires_after_the_ttl(store: ResponseStore, clock: FakeClock) -> None:
    await store.save(_response(), _items(2), owner=SHARED_OWNER)
    clock.now += TTL - 1
    assert await store.get("resp_1", owner=SHARED_OWNER) is not None
    clock.now += 1
    assert await store.get("resp_1", owner=SHARED_OWNER) is None
    assert await store.list_input_items("resp_1", owner=SHARED_OWNER) is None
    assert await store.delete("resp_1", owner=SHARED_OWNER) is False


async def test_concurrent_saves_and_reads_all_land(store: ResponseStore) -> None:
    """Saves and reads made at once are grouped into rounds (one statement / pipeline each):
    every one lands and each reader gets its own record, the last save of an id winning."""
    ids = [f"resp_{i}" for i in range(40)]
    await asyncio.gather(
        *(store.save(_response(rid, text=rid), _items(1), owner="a") for rid in ids),
        store.save(_response("resp_0", text="again"), _items(1), owner="a"),
    )
    records = await asyncio.gather(*(store.get(rid, owner="a") for rid in [*ids, "resp_x"]))
    texts = [r.response.output[0].content[0].text if r else None for r in records]  # type: ignore[union-attr]
    assert texts == ["again", *ids[1:], None]


async def test_saving_again_replaces(store: ResponseStore) -> None:
    await store.save(_response(text="draft"), _items(1), owner="a")
    await store.save(_response(text="final"), _items(2), owner="a")
    record = await store.get("resp_1", owner="a")
    assert record is not None and record.response == _response(text="final")
    assert len(record.input_items) == 2


@pytest.mark.parametrize(
    ("query", "ids", "has_more"),
    [
        ({}, ["msg_4", "msg_3", "msg_2", "msg_1", "msg_0"], False),
        ({"order": "asc"}, ["msg_0", "msg_1", "msg_2", "msg_3", "msg_4"], False),
        ({"limit": 2}, ["msg_4", "msg_3"], True),
        ({"limit": 2, "after": "msg_3"}, ["msg_2", "msg_1"], True),
        ({"limit": 2, "after": "msg_1"}, ["msg_0"], False),
        ({"order": "asc", "limit": 3, "after": "msg_1"}, ["msg_2", "msg_3", "msg_4"], False),
        ({"after": "msg_0"}, [], False),
        ({"limit": 5}, ["msg_4", "msg_3", "msg_2", "msg_1", "msg_0"], False),
    ],
    ids=[
        "default-desc",
        "asc",
        "limit",
        "after",
        "last-page",
        "asc-after",
        "past-the-end",
        "exact",
    ],
)
async def test_input_items_pages(
    store: ResponseStore, query: dict[str, Any], ids: list[str], has_more: bool
) -> None:
    await store.save(_response(), _items(5), owner="a")
    page = await store.list_input_items("resp_1", owner="a", **query)
    assert page is not None
    assert ([item.id for item in page.data], page.has_more) == (ids, has_more)
    assert (page.first_id, page.last_id) == ((ids[0], ids[-1]) if ids else (None, None))
    if ids:
        parsed = ResponseItemList.model_validate(msgspec.to_builtins(page))
        assert [item.id for item in parsed.data] == ids


@pytest.mark.parametrize(
    ("query", "param"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"order": "up"}, "order"),
     ({"after": "msg_9"}, "after")],
    ids=["limit-0", "limit-101", "order", "after-unknown"],
)  # fmt: skip
async def test_input_items_bad_queries(
    store: ResponseStore, query: dict[str, Any], param: str
) -> None:
    await store.save(_response(), _items(2), owner="a")
    with pytest.raises(InvalidRequestError) as info:
        await store.list_input_items("resp_1", owner="a", **query)
    assert info.value.param == param


def test_openai_python_pages_through_input_items() -> None:
    # The SDK's cursor pagination: `after` = the last id of a page, while `has_more`.
    items = _items(5)
    asked: list[str] = []

    def reply(request: httpx.Request) -> httpx.Response:
        query = request.url.params
        asked.append(str(request.url.query, "ascii"))
        page = page_items(
            items,
            limit=int(query.get("limit", "20")),
            order=query.get("order", "desc"),
            after=query.get("after"),
        )
        return httpx.Response(200, content=msgspec.json.encode(page))

    http = httpx.Client(transport=httpx.MockTransport(reply))
    with openai.OpenAI(base_url="http://shim.test/v1", api_key="x", http_client=http) as client:
        listed = client.responses.input_items.list("resp_1", limit=2, order="asc")
        ids = [item.id for item in listed]
    assert ids == ["msg_0", "msg_1", "msg_2", "msg_3", "msg_4"]
    assert asked == [
        "limit=2&order=asc",
        "limit=2&order=asc&after=msg_1",
        "limit=2&order=asc&after=msg_3",
    ]


# --- each backend -------------------------------------------------------------------------------


async def test_two_redis_stores_share_responses(
    redis_url: str, prefix: str, redis_client: redis.asyncio.Redis
) -> None:
    first = shared.RedisStore(redis_client, prefix=prefix, ttl=TTL)
    other_client = redis.asyncio.Redis.from_url(redis_url)
    try:
        second = shared.RedisStore(other_client, prefix=prefix, ttl=TTL)
        await first.save(_response("resp_a"), _items(1), owner="a")
        record = await second.get("resp_a", owner="a")
        assert record is not None and record.response == _response("resp_a")
        assert await second.delete("resp_a", owner="a")
        assert await first.get("resp_a", owner="a") is None
    finally:
        await other_client.aclose()


async def test_redis_keys_carry_the_ttl(prefix: str, redis_client: redis.asyncio.Redis) -> None:
    await shared.RedisStore(redis_client, prefix=prefix, ttl=TTL).save(_response(), [], owner="a")
    milliseconds = await redis_client.pttl(f"{prefix}response:resp_1")
    assert TTL * 1000 - 5000 < milliseconds <= TTL * 1000


async def test_sqlite_is_created_on_first_use_private_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "data" / "shim" / "state.db"
    first = SQLiteStore(path, ttl=TTL)
    assert not path.parent.exists()
    await first.save(_response(), _items(1), owner="a")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # A second worker process opens the same file: it sees the response, and after a restart
    # (every connection closed) the response is still there.
    second = SQLiteStore(path, ttl=TTL)
    assert await second.get("resp_1", owner="a") is not None
    await first.aclose()
    await second.aclose()
    reopened = SQLiteStore(path, ttl=TTL)
    assert await reopened.get("resp_1", owner="a") is not None
    mode = await reopened._run(lambda db: db.execute("PRAGMA journal_mode").fetchone()[0])
    assert mode == "wal"
    await reopened.aclose()


async def test_sqlite_sweeps_expired_rows(tmp_path: Path, clock: FakeClock) -> None:
    store = SQLiteStore(tmp_path / "s.db", ttl=TTL, clock=clock)
    await store.save(_response("resp_old"), [], owner="a")
    clock.now += TTL + 1
    await store.save(_response("resp_new"), [], owner="a")
    rows = await store._run(lambda db: db.execute("SELECT id FROM responses").fetchall())
    assert rows == [("resp_new",)]
    await store.aclose()


async def test_memory_sweeps_expired_records(clock: FakeClock) -> None:
    store = MemoryStore(ttl=SWEEP_INTERVAL, clock=clock)
    await store.save(_response("resp_old"), [], owner="a")
    clock.now += SWEEP_INTERVAL
    await store.save(_response("resp_new"), [], owner="a")
    assert len(store) == 1


# --- [state] ----------------------------------------------------------------------------------


def _state(toml: str = "", env: dict[str, str] | None = None) -> StateConfig:
    return parse_config(f"[state]\n{toml}", source="t.toml", env=env or {}).state


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ("", {"XDG_DATA_HOME": "/xdg"}, {"backend": "sqlite", "path": "/xdg/shim/state.db"}),
        ("", {"HOME": "/home/u"}, {"path": "/home/u/.local/share/shim/state.db"}),
        ("", {"XDG_DATA_HOME": "rel", "HOME": "/h"}, {"path": "/h/.local/share/shim/state.db"}),
        ('path = "s.db"', {}, {"path": "s.db"}),
        ('backend = "memory"', {}, {"backend": "memory", "path": None}),
        ('backend = "redis"\nurl = "${REDIS_URL}"', {"REDIS_URL": "redis://r:6379/1"},
         {"url": "redis://r:6379/1", "key_prefix": "shim:", "path": None}),
        ("response_ttl = 60", {}, {"response_ttl": 60.0}),
        ("", {}, {"response_ttl": 30 * 86400.0}),
    ],
    ids=["xdg", "home", "xdg-relative-ignored", "path", "memory", "redis-env", "ttl", "ttl-default"],
)  # fmt: skip
def test_state_config(toml: str, env: dict[str, str], expected: dict[str, Any]) -> None:
    state = _state(toml, env)
    assert {key: getattr(state, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('backend = "redis"', "state.url: backend"),
        ('backend = "redis"\nurl = "http://x"', "state.url: expected a redis://"),
        ('url = "redis://x"', "state.url: only used"),
        ('backend = "memory"\npath = "x.db"', "state.path: only used"),
        ("response_ttl = 0", "state.response_ttl: must be greater"),
        ('backend = "disk"', "state.backend: unknown value"),
        ("ttl = 5", "state.ttl: unknown key"),
    ],
    ids=["redis-no-url", "redis-bad-url", "url-without-redis", "path-without-sqlite", "ttl-zero",
         "bad-backend", "unknown-key"],
)  # fmt: skip
def test_bad_state_config(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _state(toml)


async def test_open_state(tmp_path: Path, redis_url: str) -> None:
    sqlite = open_state(_state('path = "sub/s.db"'), base_dir=tmp_path)
    assert isinstance(sqlite.responses, SQLiteStore)
    assert sqlite.responses.path == tmp_path / "sub" / "s.db"
    await sqlite.aclose()
    memory = open_state(_state('backend = "memory"'), base_dir=tmp_path)
    assert isinstance(memory.responses, MemoryStore)
    config = _state(f'backend = "redis"\nurl = "{redis_url}"\nkey_prefix = "open:"')
    state = open_state(config, base_dir=tmp_path)
    await state.responses.save(_response(), [], owner="a")
    assert await state.responses.get("resp_1", owner="a") is not None
    await state.rates.window("k", rpm=1, tpm=None).admit()
    await state.aclose()
