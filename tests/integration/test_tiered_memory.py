"""TieredMemory / AsyncTieredMemory over real Redis and PostgreSQL: read-through, promotion,
LookupMetrics, write-through, and track_agent."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool
import pytest
import redis
import redis.asyncio as aioredis

import tiertrace
from support.services import fill_table
from tiertrace import AsyncTieredMemory, TieredMemory

SQL = "SELECT body FROM facts WHERE query = %s"
PUT = "INSERT INTO facts (query, body) VALUES (%s, %s) ON CONFLICT (query) DO NOTHING"


@pytest.fixture
def facts(pg_dsn: str) -> str:
    rows = [("capital of france", "Paris")]
    return fill_table(pg_dsn, "facts", "query text PRIMARY KEY, body text", rows)


def test_second_call_is_served_by_l1_after_promotion(
    telemetry: Any, r: redis.Redis, pg_dsn: str, facts: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        memory = TieredMemory(redis=r, postgres=conn, sql=SQL, ttl_s={"redis": 60})
        first, m1 = memory.track_memory_access("capital of france", user_id="u1", query_type="fact")
        second, m2 = memory.track_memory_access(
            "Capital of  France", user_id="u1", query_type="fact"
        )
        missing, m3 = memory.track_memory_access("capital of mars")
    assert first == ("Paris",) and second == b"Paris" and missing is None
    assert (m1.tier_accessed, m1.cache_hit) == ("postgresql", False)
    assert [(a["tier"], a["operation"], a["hit"]) for a in m1.access_chain] == [
        ("redis", "GET", False),
        ("postgresql", "SELECT", True),
        ("redis", "SET", None),
    ]
    assert m1.cost_usd == pytest.approx(0.0012)
    assert (m2.tier_accessed, m2.cache_hit, len(m2.access_chain)) == ("redis", True, 1)
    assert m3.tier_accessed == "none"
    assert m2.cache_effectiveness == pytest.approx(1 / 2)
    assert 0 < r.ttl(memory.key("capital of france")) <= 60
    spans = telemetry.spans("lookup fact")
    assert [s.attributes["tiertrace.served_by"] for s in spans] == ["postgresql", "redis"]
    assert all("capital" not in repr(dict(s.attributes)) for s in telemetry.spans())


def test_promotion_can_be_turned_off(
    telemetry: Any, r: redis.Redis, pg_dsn: str, facts: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        memory = TieredMemory(redis=r, postgres=conn, sql=SQL, promote=False)
        memory.get("capital of france")
        _, metrics = memory.track_memory_access("capital of france")
    assert metrics.tier_accessed == "postgresql"


def test_put_writes_through_to_every_tier(
    telemetry: Any, r: redis.Redis, pg_dsn: str, facts: str
) -> None:
    with psycopg_pool.ConnectionPool(pg_dsn, min_size=1, kwargs={"autocommit": True}) as pool:
        memory = TieredMemory(redis=r, postgres=pool, sql=SQL, put_sql=PUT)
        memory.put("capital of italy", "Rome")
        r.delete(memory.key("capital of italy"))
        assert memory.get("capital of italy") == ("Rome",)
    assert telemetry.access_count(db__operation__name="INSERT") == 1


async def test_async_memory_reads_through_and_promotes(
    telemetry: Any, redis_url: str, pg_dsn: str, facts: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        memory = AsyncTieredMemory(redis=client, postgres=conn, sql=SQL)
        first, m1 = await memory.track_memory_access("capital of france")
        second = await memory.get("capital of france")
    await client.aclose()
    assert first == ("Paris",) and second == b"Paris"
    assert m1.tier_accessed == "postgresql"
    tiertrace.flush()
    assert tiertrace.stats()["total"]["served_by"]["redis"] == 1


def test_track_agent_makes_each_call_a_lookup_with_the_agent_id(
    telemetry: Any, r: redis.Redis
) -> None:
    class Agent:
        def recall(self, key: str) -> Any:
            r.get(key)
            return r.get(key + ":fallback")

    agent = Agent()
    undo = tiertrace.track_agent(agent, methods=("recall",), agent_id="planner")
    agent.recall("a")
    undo()
    agent.recall("b")
    tiertrace.flush()
    (span,) = telemetry.spans("lookup recall")
    assert span.attributes["gen_ai.agent.id"] == "planner"
    assert "recall" not in vars(agent)


def test_queries_differing_in_numbers_or_punctuation_never_share_an_entry(
    telemetry: Any, r: redis.Redis
) -> None:
    memory = TieredMemory(redis=r)
    memory.put("balance of account 1001", "$5")
    assert memory.get("balance of account 2002") is None
    assert memory.get("balance of account 1001!") is None
    assert memory.get("Balance of  account 1001") == b"$5"
