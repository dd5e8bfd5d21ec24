"""Lookups: explicit and implicit grouping, served-by, the event, listeners and stats()."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio as aioredis

import tiertrace
from tiertrace._runtime.stats import histogram_quantile

LOOKUP = "tiertrace.lookup.duration"
ACCESS = "tiertrace.access.duration"
SQL = "SELECT body FROM memories WHERE id = %s"


def served(telemetry: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for attrs, point in telemetry.points(LOOKUP):
        out[attrs["tiertrace.served_by"]] = out.get(attrs["tiertrace.served_by"], 0) + point.count
    return out


def cache_aside(r: redis.Redis, conn: psycopg.Connection[Any], i: int) -> Any:
    value = r.get(f"mem:{i}")
    if value is None:
        row = conn.execute(SQL, (i,)).fetchone()
        if row is not None:
            r.set(f"mem:{i}", row[0], ex=60)
            value = row[0]
    return value


def test_implicit_cache_aside_is_grouped_by_the_tier_that_served(
    telemetry: Any, r: redis.Redis, pg_dsn: str, table: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for i in (1, 1, 2, 99):  # L2 hit + fill, L1 hit, L2 hit + fill, miss everywhere
            cache_aside(r, conn, i)
    tiertrace.flush()
    assert served(telemetry) == {"postgresql": 2, "redis": 1, "none": 1}
    spans = telemetry.spans("tiertrace.lookup")
    chains = sorted(s.attributes["tiertrace.tiers_tried"] for s in spans)
    # the L1 hit is a lookup of one access: no lookup span; the other three fell through
    assert chains == [("redis", "postgresql")] * 3
    pg_served = [s for s in spans if s.attributes["tiertrace.served_by"] == "postgresql"]
    assert all(s.attributes["tiertrace.cost"] == pytest.approx(0.0012) for s in pg_served)
    assert all(len(s.links) == 3 for s in pg_served)  # GET miss, SELECT hit, SET fill


def test_level1_hit_ends_the_lookup_at_once(telemetry: Any, r: redis.Redis) -> None:
    r.set("k:1", "v")
    r.get("k:1")
    assert served(telemetry) == {"redis": 1}


def test_read_at_same_level_closes_the_pending_lookup(telemetry: Any, r: redis.Redis) -> None:
    r.get("a:1")  # miss: pending
    r.get("a:2")  # same level: closes the first, starts another
    tiertrace.flush()
    assert served(telemetry) == {"none": 2}


def test_window_passing_closes_the_pending_lookup(
    make_telemetry: Any, r: redis.Redis, pg_dsn: str, table: str
) -> None:
    telemetry = make_telemetry(implicit_window_s=0.05)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        r.get("mem:1")  # miss
        time.sleep(0.1)
        conn.execute(SQL, (1,)).fetchone()  # too late: a bypass lookup of its own
    tiertrace.flush()
    assert served(telemetry) == {"none": 1, "postgresql": 1}


def test_deeper_read_with_nothing_pending_is_a_bypass(
    telemetry: Any, pg_dsn: str, table: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(SQL, (1,)).fetchone()
        conn.execute(SQL, (2,)).fetchone()
    tiertrace.flush()
    assert served(telemetry) == {"postgresql": 2}


def test_a_fill_after_a_lone_deeper_read_joins_its_lookup(
    telemetry: Any, r: redis.Redis, pg_dsn: str, table: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute(SQL, (1,)).fetchone()  # nothing pending: a bypass
        assert row is not None
        r.set("mem:1", row[0], ex=60)  # the fill joins it
        conn.execute(SQL, (2,)).fetchone()  # same level: closes it; alone until flushed
    tiertrace.flush()
    (span,) = telemetry.spans("tiertrace.lookup")  # only the lookup of two accesses has a span
    assert span.attributes["tiertrace.tiers_tried"] == ("postgresql", "redis")
    assert span.attributes["tiertrace.served_by"] == "postgresql"
    assert len(span.links) == 2
    assert served(telemetry) == {"postgresql": 2}


def test_writes_join_as_fills_and_never_start_a_lookup(telemetry: Any, r: redis.Redis) -> None:
    r.set("w:1", "v")  # nothing pending: no lookup
    r.get("w:2")  # miss, pending
    r.set("w:2", "v")  # fill joins
    tiertrace.flush()
    (span,) = telemetry.spans("tiertrace.lookup")
    assert span.attributes["tiertrace.tiers_tried"] == ("redis",)
    assert len(span.links) == 2
    assert served(telemetry) == {"none": 1}


def test_pending_lookups_are_flushed_on_metric_collection_after_their_window(
    make_telemetry: Any, r: redis.Redis
) -> None:
    telemetry = make_telemetry(implicit_window_s=0.05)
    r.get("p:1")
    assert served(telemetry) == {}
    time.sleep(0.1)
    assert served(telemetry) == {"none": 1}


async def test_a_finished_task_closes_its_pending_lookup_without_waiting_for_collection(
    make_telemetry: Any, redis_url: str
) -> None:
    telemetry = make_telemetry(implicit_window_s=60.0)  # collection alone would keep them
    grouper = telemetry.handle.grouper
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=20)
    client = aioredis.Redis(connection_pool=pool)

    async def one(i: int) -> None:  # a request in a task of its own: miss, then done
        await client.get(f"task-miss:{i}")

    for _ in range(3):
        await asyncio.gather(*(asyncio.create_task(one(i)) for i in range(100)))
        await asyncio.sleep(0)
        # no finished task, nor its accesses, stays behind until the next collection
        assert grouper.pending == {} and grouper.watched == set()

    async def two(i: int) -> None:  # one long task, a lookup pending between its misses
        for j in range(5):
            await client.get(f"task-long:{i}:{j}")
            assert len(grouper.watched) <= 4  # one registration per task, however many misses

    await asyncio.gather(*(two(i) for i in range(4)))
    await asyncio.sleep(0)
    await client.aclose()
    await pool.disconnect()
    assert grouper.pending == {} and grouper.watched == set()
    assert served(telemetry) == {"none": 320}  # 300 + 4 × 5: every miss is one lookup


def test_pending_lookups_are_flushed_at_shutdown(make_telemetry: Any, r: redis.Redis) -> None:
    telemetry = make_telemetry()
    r.get("s:1")
    tiertrace.shutdown()
    assert served(telemetry) == {"none": 1}


def test_explicit_lookup_is_the_parent_of_its_accesses(
    telemetry: Any, r: redis.Redis, pg_dsn: str, table: str
) -> None:
    with (
        psycopg.connect(pg_dsn, autocommit=True) as conn,
        tiertrace.lookup(query_type="profile", user_id="u-1", agent_id="planner"),
    ):
        cache_aside(r, conn, 3)
    (span,) = telemetry.spans("lookup profile")
    children = [s for s in telemetry.access_spans() if s.parent is not None]
    assert len(children) == 3
    assert all(s.parent.span_id == span.context.span_id for s in children)
    assert span.attributes["tiertrace.served_by"] == "postgresql"
    assert span.attributes["tiertrace.served_by.level"] == 2
    assert span.attributes["user.id"] == "u-1"
    assert span.attributes["gen_ai.agent.id"] == "planner"
    ((attrs, _),) = telemetry.points(LOOKUP)
    assert attrs == {
        "tiertrace.served_by": "postgresql",
        "tiertrace.served_by.level": 2,
        "tiertrace.cache_hit": False,
        "tiertrace.query_type": "profile",
    }


def test_nested_lookup_joins_the_outer_one(telemetry: Any, r: redis.Redis) -> None:
    with tiertrace.lookup(query_type="outer"):
        r.get("n:1")
        with tiertrace.lookup(query_type="inner"):
            r.get("n:2")
    assert served(telemetry) == {"none": 1}
    assert len(telemetry.spans("lookup")) == 1


async def test_lookup_decorator_works_for_async_functions(telemetry: Any, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)

    @tiertrace.lookup(query_type="recall")
    async def recall(i: int) -> Any:
        await client.set(f"d:{i}", "x")
        return await client.get(f"d:{i}")

    try:
        assert await recall(1) == b"x"
    finally:
        await client.aclose()
    assert served(telemetry) == {"redis": 1}


def test_event_payload_has_the_documented_shape(
    telemetry: Any, r: redis.Redis, pg_dsn: str, table: str
) -> None:
    events: list[dict[str, Any]] = []
    unsubscribe = tiertrace.on_access(events.append)
    with psycopg.connect(pg_dsn, autocommit=True) as conn, tiertrace.lookup(query_type="q"):
        cache_aside(r, conn, 1)
    unsubscribe()
    r.get("after:unsubscribe")
    tiertrace.flush()
    (event,) = events
    assert event["event_type"] == "memory_tier_access"
    p = event["payload"]
    assert set(p) == {
        "tier_accessed",
        "tier_latencies",
        "access_chain",
        "total_latency_ms",
        "cache_hit",
        "query_type",
        "result_count",
        "cost_usd",
    }
    assert p["tier_accessed"] == "postgresql" and p["cache_hit"] is False
    assert [(a["tier"], a["operation"], a["hit"]) for a in p["access_chain"]] == [
        ("redis", "GET", False),
        ("postgresql", "SELECT", True),
        ("redis", "SET", None),
    ]
    assert set(p["access_chain"][0]) == {
        "tier",
        "level",
        "operation",
        "latency_ms",
        "hit",
        "cost",
        "error",
    }
    assert p["tier_latencies"]["postgresql"]["hit"] is True
    assert p["cost_usd"] == pytest.approx(0.0012)
    logs = [rec for rec in telemetry.logs() if rec.log_record.event_name == "memory_tier_access"]
    # this lookup only: the implicit lookup of one access after unsubscribing logs nothing
    assert len(logs) == 1
    assert logs[0].log_record.body["payload"]["tier_accessed"] == "postgresql"
    (span,) = telemetry.spans("lookup q")
    assert [e.name for e in span.events] == ["memory_tier_access"]


def test_listener_that_raises_is_counted_and_does_not_break_the_lookup(
    telemetry: Any, r: redis.Redis
) -> None:
    def broken(_event: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    tiertrace.on_access(broken)
    r.set("x:1", "v")
    assert r.get("x:1") == b"v"
    assert served(telemetry) == {"redis": 1}
    errors = telemetry.points("tiertrace.self.errors")
    assert [(a, p.value) for a, p in errors] == [({"tiertrace.component": "listener"}, 1)]


def test_a_fault_while_queued_accesses_are_handled_is_counted_and_loses_no_access(
    make_telemetry: Any, r: redis.Redis
) -> None:
    t = make_telemetry(instrument=["redis"])

    def broken(_acc: Any) -> None:  # a fault of tiertrace's own, after the calls returned
        raise RuntimeError("injected")

    t.handle.grouper.single = broken  # handles the queued cache hits
    r.set("user:1:profile", "v")
    for _ in range(300):  # more than one batch of queued accesses
        assert r.get("user:1:profile") == b"v"
    assert tiertrace.stats()["self_errors"] == {"lookup": 300}
    assert t.access_count(db__operation__name="GET", tiertrace__hit=True) == 300
    assert t.access_count(db__operation__name="SET") == 1


def test_threads_keep_their_lookups_apart(
    telemetry: Any, redis_url: str, pg_dsn: str, table: str
) -> None:
    def worker(n: int) -> None:
        client = redis.Redis.from_url(redis_url)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for i in range(25):
                with tiertrace.lookup(query_type="t"):
                    cache_aside(client, conn, 1000 + n * 100 + i)  # misses everywhere
                    client.get(f"own:{n}")
        client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert served(telemetry) == {"none": 200}
    spans = telemetry.spans("lookup t")
    assert len(spans) == 200
    by_parent: dict[int, int] = {}
    for s in telemetry.access_spans():
        by_parent[s.parent.span_id] = by_parent.get(s.parent.span_id, 0) + 1
    assert sorted(set(by_parent.values())) == [3]  # GET, SELECT, GET — none picked up another's


async def test_concurrent_asyncio_tasks_keep_their_lookups_apart(
    telemetry: Any, redis_url: str
) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=50)
    client = aioredis.Redis(connection_pool=pool)
    await client.set("hot", "v")

    async def one(i: int) -> None:
        async with tiertrace.lookup(query_type="a"):
            await client.get(f"cold:{i}")
            await asyncio.sleep(0)
            await client.get("hot")

    await asyncio.gather(*(one(i) for i in range(200)))
    await client.aclose()
    await pool.disconnect()
    spans = telemetry.spans("lookup a")
    assert len(spans) == 200
    assert all(s.attributes["tiertrace.served_by"] == "redis" for s in spans)
    by_parent: dict[int, int] = {}
    for s in telemetry.access_spans():
        if s.parent is not None:
            by_parent[s.parent.span_id] = by_parent.get(s.parent.span_id, 0) + 1
    assert len(by_parent) == 200 and set(by_parent.values()) == {2}


def test_stats_equal_the_exported_metrics(
    telemetry: Any, r: redis.Redis, pg_dsn: str, table: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for i in (1, 1, 1, 2, 2, 3, 50, 51):
            cache_aside(r, conn, i)
    tiertrace.flush()
    snap = tiertrace.stats()
    total = snap["total"]
    assert total["lookups"] == sum(served(telemetry).values()) == 8
    assert total["served_by"]["redis"] == served(telemetry)["redis"] == 3
    assert total["cache_effectiveness"] == pytest.approx(3 / 8)
    for tier in ("redis", "postgresql"):
        row = total["tiers"][tier]
        assert row["accesses"] == telemetry.access_count(tiertrace__tier=tier)
        assert row["hits"] == telemetry.access_count(tiertrace__tier=tier, tiertrace__hit=True)
        assert row["reads"] == row["hits"] + telemetry.access_count(
            tiertrace__tier=tier, tiertrace__hit=False
        )
    cost = {a["tiertrace.tier"]: p.value for a, p in telemetry.points("tiertrace.cost.usd")}
    assert cost["redis"] == pytest.approx(total["tiers"]["redis"]["cost_usd"])
    assert cost["postgresql"] == pytest.approx(total["tiers"]["postgresql"]["cost_usd"])
    assert cost["chroma"] == 0.0
    # latencies: the exported sums, and percentiles from the exported buckets
    for tier in ("redis", "postgresql"):
        points = [p for a, p in telemetry.points(ACCESS) if a["tiertrace.tier"] == tier]
        count, seconds = sum(p.count for p in points), sum(p.sum for p in points)
        buckets = [sum(b) for b in zip(*(p.bucket_counts for p in points), strict=True)]
        bounds = points[0].explicit_bounds
        row = total["tiers"][tier]
        assert row["mean_ms"] == pytest.approx(seconds / count * 1000)
        assert row["p50_ms"] == pytest.approx(histogram_quantile(0.5, bounds, buckets) * 1000)
        assert row["p95_ms"] == pytest.approx(histogram_quantile(0.95, bounds, buckets) * 1000)
    points = [p for _a, p in telemetry.points(LOOKUP)]
    buckets = [sum(b) for b in zip(*(p.bucket_counts for p in points), strict=True)]
    assert total["mean_lookup_latency_ms"] == pytest.approx(sum(p.sum for p in points) / 8 * 1000)
    assert total["p95_lookup_latency_ms"] == pytest.approx(
        histogram_quantile(0.95, points[0].explicit_bounds, buckets) * 1000
    )
    assert snap["window"]["lookups"] == 8  # a first call: everything since init()
    names = {t["name"]: t for t in snap["targets"]}
    assert names["cache_effectiveness"]["met"] is False


@pytest.mark.parametrize("single_access_events", [False, True])
def test_single_access_implicit_lookups_are_logged_only_when_asked(
    make_telemetry: Any, r: redis.Redis, single_access_events: bool
) -> None:
    telemetry = make_telemetry(single_access_events=single_access_events)
    heard: list[dict[str, Any]] = []
    tiertrace.on_access(heard.append)
    r.set("one:1", "v")
    r.get("one:1")  # an L1 hit: a lookup of one access
    tiertrace.flush()
    logs = [rec for rec in telemetry.logs() if rec.log_record.event_name == "memory_tier_access"]
    assert len(logs) == (1 if single_access_events else 0)
    assert [e["payload"]["tier_accessed"] for e in heard] == ["redis"]
    assert served(telemetry) == {"redis": 1}
