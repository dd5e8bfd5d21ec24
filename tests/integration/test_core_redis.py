"""Redis accesses: exact counts, hit polarity, errors, async timing, suppression, templates."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode

import tiertrace
from support.tracebacks import passed_through, raised_inside

DURATION = "tiertrace.access.duration"


def test_mixed_workload_gives_exact_counts_per_operation_and_hit(
    telemetry: Any, r: redis.Redis
) -> None:
    r.set("user:1:profile", "alice")
    r.get("user:1:profile")  # hit
    r.get("user:2:profile")  # miss
    r.get("user:3:profile")  # miss
    r.hset("h:1", mapping={"a": "1"})
    r.hgetall("h:1")  # hit
    r.hgetall("h:2")  # miss: {}
    r.exists("user:1:profile")  # hit
    r.exists("nope")  # miss
    r.lrange("list:1", 0, -1)  # miss: []
    r.ping()  # housekeeping, not an access
    r.delete("h:1")

    assert telemetry.access_count(db__operation__name="GET", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="GET", tiertrace__hit=False) == 2
    assert telemetry.access_count(db__operation__name="HGETALL", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="HGETALL", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="EXISTS", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="EXISTS", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="LRANGE", tiertrace__hit=False) == 1
    # writes carry no hit attribute at all
    assert telemetry.access_count(db__operation__name="SET", tiertrace__hit="<absent>") == 1
    assert telemetry.access_count(db__operation__name="HSET", tiertrace__hit="<absent>") == 1
    assert telemetry.access_count(db__operation__name="PING") == 0
    assert telemetry.access_count(tiertrace__tier="redis", tiertrace__tier__level=1) == 11
    assert len(telemetry.access_spans()) == 11


def test_get_of_missing_key_is_a_miss_with_unset_status(telemetry: Any, r: redis.Redis) -> None:
    assert r.get("absent:key") is None
    (span,) = telemetry.access_spans()
    assert span.attributes["tiertrace.hit"] is False
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["db.system.name"] == "redis"
    assert span.attributes["tiertrace.cost"] == pytest.approx(0.0001)


def test_mget_counts_requested_and_found_keys(telemetry: Any, r: redis.Redis) -> None:
    r.set("k:1", "a")
    r.set("k:2", "b")
    r.mget("k:1", "k:2")
    r.mget("k:1", "k:2", "k:3")
    hit, miss = [s for s in telemetry.access_spans() if s.name.startswith("MGET")]
    assert (hit.attributes["tiertrace.hit"], hit.attributes["tiertrace.keys.hit"]) == (True, 2)
    assert miss.attributes["tiertrace.hit"] is False
    assert miss.attributes["tiertrace.keys.requested"] == 3
    assert miss.attributes["tiertrace.keys.hit"] == 2


def test_pipeline_and_transaction_are_one_access_each(telemetry: Any, r: redis.Redis) -> None:
    r.set("p:1", "x")
    with r.pipeline(transaction=False) as pipe:
        pipe.get("p:1").get("p:2").set("p:3", "y")
        pipe.execute()
    with r.pipeline() as pipe:
        pipe.get("p:1").get("p:3")
        pipe.execute()
    with r.pipeline() as pipe:
        pipe.set("p:4", "z").expire("p:4", 10)
        pipe.execute()
    with r.pipeline() as pipe:
        pipe.execute()  # empty: not an access

    assert telemetry.access_count(db__operation__name="PIPELINE", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="MULTI", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="MULTI", tiertrace__hit="<absent>") == 1
    batch = sorted(
        s.attributes["db.operation.batch.size"]
        for s in telemetry.access_spans()
        if s.name.split()[0] in ("PIPELINE", "MULTI")
    )
    assert batch == [2, 2, 3]


def test_keys_become_templates_and_values_never_appear(telemetry: Any, r: redis.Redis) -> None:
    r.set("user:4242:profile", "secret-value-xyz")
    r.get("user:4242:profile")
    names = {s.name for s in telemetry.access_spans()}
    assert names == {"SET user:{id}:profile", "GET user:{id}:profile"}
    for span in telemetry.access_spans():
        text = repr(dict(span.attributes)) + span.name
        assert "4242" not in text and "secret-value-xyz" not in text


def test_error_reply_is_error_span_and_the_exception_reaches_the_caller_unchanged(
    telemetry: Any, r: redis.Redis
) -> None:
    r.set("str:1", "x")
    with pytest.raises(redis.ResponseError) as caught:
        r.lpush("str:1", "y")
    assert str(caught.value).startswith("WRONGTYPE")
    # redis-py's own exception, raised by redis-py, passed on by tiertrace's wrapper untouched
    assert caught.type is redis.ResponseError
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert raised_inside(caught.value, redis)
    assert passed_through(caught.value, tiertrace)
    span = next(s for s in telemetry.access_spans() if s.name.startswith("LPUSH"))
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ResponseError"
    assert span.attributes["db.response.status_code"] == "WRONGTYPE"
    assert "tiertrace.hit" not in span.attributes
    assert telemetry.access_count(db__operation__name="LPUSH", error__type="ResponseError") == 1


async def test_async_duration_covers_the_awaited_call(telemetry: Any, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.blpop(["empty:list"], timeout=0.3) is None
        await client.set("a:1", "v")
        assert await client.get("a:1") == b"v"
    finally:
        await client.aclose()
    ((_, point),) = telemetry.points(DURATION) and [
        (a, p) for a, p in telemetry.points(DURATION) if a["db.operation.name"] == "BLPOP"
    ]
    assert point.count == 1 and point.sum >= 0.3
    assert telemetry.access_count(db__operation__name="GET", tiertrace__hit=True) == 1


async def test_async_pipeline_is_one_access(telemetry: Any, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with client.pipeline() as pipe:
            pipe.set("ap:1", "v").get("ap:1")
            assert await pipe.execute() == [True, b"v"]
    finally:
        await client.aclose()
    assert telemetry.access_count(db__operation__name="MULTI", tiertrace__hit=True) == 1


def test_suppressed_calls_record_nothing(telemetry: Any, r: redis.Redis) -> None:
    with suppress_instrumentation():
        r.set("s:1", "x")
        r.get("s:1")
    r.get("s:1")
    assert telemetry.access_count() == 1


def test_uninstrument_restores_the_original_methods() -> None:
    originals = (
        redis.Redis.execute_command,
        redis.client.Pipeline.execute,
        aioredis.Redis.execute_command,
    )
    tiertrace.init(exporter="none")
    assert redis.Redis.execute_command is not originals[0]
    tiertrace.shutdown()
    assert (
        redis.Redis.execute_command,
        redis.client.Pipeline.execute,
        aioredis.Redis.execute_command,
    ) == originals


def test_tiers_with_key_match_split_one_redis_between_tiers(
    make_telemetry: Any, r: redis.Redis
) -> None:
    telemetry = make_telemetry(
        tiers=[
            tiertrace.Tier("session", 1, "redis", 0.00005, match=["session:*"]),
            tiertrace.Tier("redis", 1, "redis", 0.0001),
            tiertrace.Tier("postgresql", 2, "postgresql", 0.001),
        ]
    )
    r.get("session:9")
    r.get("user:9")
    assert telemetry.access_count(tiertrace__tier="session") == 1
    assert telemetry.access_count(tiertrace__tier="redis") == 1


def test_instrument_client_binds_one_client_without_global_instrumentation(
    make_telemetry: Any, redis_url: str
) -> None:
    telemetry = make_telemetry(instrument=[])
    bound = redis.Redis.from_url(redis_url)
    other = redis.Redis.from_url(redis_url)
    tiertrace.RedisInstrumentor().instrument_client(bound, tier="redis")
    bound.get("x:1")
    with bound.pipeline() as pipe:
        pipe.get("x:1").execute()
    other.get("x:1")
    assert telemetry.access_count() == 2
    tiertrace.RedisInstrumentor().uninstrument_client(bound)
    bound.get("x:1")
    assert telemetry.access_count() == 2
