"""Bad and odd input: invalid settings, binary and huge Redis keys, huge SQL, RESP3 replies,
rows of NULLs, empty pipelines and pipelines holding error replies — each with exact counts and
hit polarity, bounded span names and attributes, and the client's own results and exceptions.
"""

from __future__ import annotations

import gc
import math
import os
import re
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode
from test_privacy import exported_strings

import tiertrace
from support.tracebacks import raised_by
from tiertrace import ConfigError, PsycopgInstrumentor, RedisInstrumentor, Tier
from tiertrace._core.sanitize.keys import MAX_KEY_CHARS, MAX_SQL_CHARS, key_hash

ABSENT = "<absent>"
MARGIN = 16  # an operation name and a space in front of a bounded target


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    yield
    tiertrace.shutdown()


def string_values(telemetry: Any) -> list[str]:
    return [s for s in exported_strings(telemetry) if isinstance(s, str)]


# -- settings ----------------------------------------------------------------------------------


def tiers(*extra: Tier) -> dict[str, Any]:
    return {"tiers": [*extra]}


BAD_SETTINGS: list[tuple[str, Callable[[], dict[str, Any]], list[str]]] = [
    ("empty match", lambda: tiers(Tier("a", 1, "redis", 0.1, match="")), ["match", "''"]),
    (
        "non-string match",
        lambda: tiers(Tier("a", 1, "redis", 0.1, match=["user:*", 42])),  # type: ignore[list-item]
        ["match", "42"],
    ),
    (
        "negative hit_distance",
        lambda: tiers(Tier("c", 3, "chroma", 0.01, hit_distance=-0.1)),
        ["hit_distance", "'c'", ">= 0"],
    ),
    (
        "NaN hit_distance",
        lambda: tiers(Tier("c", 3, "chroma", 0.01, hit_distance=math.nan)),
        ["hit_distance", "'c'"],
    ),
    (
        "text hit_distance",
        lambda: tiers(Tier("c", 3, "chroma", 0.01, hit_distance="0.3")),  # type: ignore[arg-type]
        ["hit_distance", "'c'"],
    ),
    (
        "tuple instead of Tier",
        lambda: {"tiers": [("redis", 1, "redis", 0.1)]},
        ["('redis', 1, 'redis', 0.1)", "not a tiertrace.Tier"],
    ),
    (
        "name instead of Tier",
        lambda: {"tiers": [Tier("redis", 1, "redis", 0.1), "chroma"]},
        ["'chroma'", "not a tiertrace.Tier"],
    ),
    ("tiers as text", lambda: {"tiers": "redis"}, ["tiers", "non-empty list"]),
    ("level 0", lambda: tiers(Tier("a", 0, "redis", 0.1)), ["'a'", "level", ">= 1"]),
    ("text level", lambda: tiers(Tier("a", "1", "redis", 0.1)), ["'a'", "level"]),  # type: ignore[arg-type]
    ("bool level", lambda: tiers(Tier("a", True, "redis", 0.1)), ["'a'", "level"]),
    ("empty name", lambda: tiers(Tier("", 1, "redis", 0.1)), ["name"]),
    ("NaN cost", lambda: tiers(Tier("a", 1, "redis", math.nan)), ["'a'", "cost", "nan"]),
    (
        "negative operation cost",
        lambda: tiers(Tier("a", 1, "redis", 0.1, cost_per_operation={"GET": -1.0})),
        ["'a'", "cost", "-1.0"],
    ),
    ("negative port", lambda: {"prometheus_port": -1}, ["prometheus_port", "-1"]),
    ("text port", lambda: {"prometheus_port": "9464"}, ["prometheus_port", "'9464'"]),
    ("zero stats window", lambda: {"stats_window_s": 0}, ["stats_window_s", "> 0"]),
    ("NaN stats window", lambda: {"stats_window_s": math.nan}, ["stats_window_s", "nan"]),
    ("text stats window", lambda: {"stats_window_s": "60"}, ["stats_window_s", "'60'"]),
    ("fractional capacity", lambda: {"advisor_capacity": 1.5}, ["advisor_capacity", "1.5"]),
    ("bool min accesses", lambda: {"advisor_min_accesses": True}, ["advisor_min_accesses"]),
    ("negative advisor window", lambda: {"advisor_window_s": -5}, ["advisor_window_s", "> 0"]),
    ("NaN implicit window", lambda: {"implicit_window_s": math.nan}, ["implicit_window_s"]),
    ("bool implicit window", lambda: {"implicit_window_s": True}, ["implicit_window_s"]),
    ("zero latency target", lambda: {"target_lookup_latency_ms": 0}, ["target_lookup_latency"]),
    ("negative ratio target", lambda: {"target_l1_hit_rate": -0.1}, ["target_l1_hit_rate"]),
    ("instrument as text", lambda: {"instrument": "redis"}, ["instrument", "list"]),
]


@pytest.mark.parametrize(
    ("make", "words"), [c[1:] for c in BAD_SETTINGS], ids=[c[0] for c in BAD_SETTINGS]
)
def test_every_invalid_setting_raises_config_error_naming_it_and_changes_nothing(
    make: Callable[[], dict[str, Any]], words: list[str]
) -> None:
    original = redis.Redis.__dict__["execute_command"]
    with pytest.raises(ConfigError) as caught:
        tiertrace.init(exporter="none", **make())
    for word in words:
        assert word in str(caught.value)
    assert tiertrace.handle() is None
    assert redis.Redis.__dict__["execute_command"] is original  # nothing was patched


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("TIERTRACE_INSTRUMENT", "redis,mysql", ["TIERTRACE_INSTRUMENT", "mysql"]),
        ("TIERTRACE_IMPLICIT_WINDOW_S", "-1", ["TIERTRACE_IMPLICIT_WINDOW_S", "> 0"]),
        ("TIERTRACE_CAPTURE_KEYS", "everything", ["TIERTRACE_CAPTURE_KEYS", "'template'"]),
        ("TIERTRACE_STATS_WINDOW_S", "-5", ["TIERTRACE_STATS_WINDOW_S", "> 0"]),
        ("TIERTRACE_STATS_WINDOW_S", "a minute", ["TIERTRACE_STATS_WINDOW_S", "float"]),
        ("TIERTRACE_ADVISOR_CAPACITY", "0", ["TIERTRACE_ADVISOR_CAPACITY", ">= 1"]),
        ("TIERTRACE_TARGET_L1_HIT_RATE", "2", ["TIERTRACE_TARGET_L1_HIT_RATE", "between 0"]),
        ("TIERTRACE_SEMCONV_METRICS", "sometimes", ["TIERTRACE_SEMCONV_METRICS", "bool"]),
    ],
)
def test_invalid_environment_settings_raise_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, words: list[str]
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as caught:
        tiertrace.init(exporter="none")
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"implicit_lookups": "false"},
        {"capture_query_text": "no"},
        {"advisor": "off"},
        {"semconv_metrics": "yes"},
        {"prometheus_port": True},
        {"target_l1_hit_rate": True},
    ],
    ids=lambda kw: next(iter(kw)),
)
def test_wrongly_typed_settings_raise_config_error_naming_them(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        tiertrace.init(exporter="none", instrument=[], **kwargs)


@pytest.mark.parametrize("name", ["tracer_provider", "meter_provider", "logger_provider"])
def test_a_provider_that_is_not_one_raises_config_error_naming_it(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        tiertrace.init(exporter="none", instrument=[], **{name: object()})


# a fresh interpreter: exporter="console" would otherwise install global providers
BAD_OTEL_ENV = r"""
import tiertrace
try:
    tiertrace.init(exporter="console", instrument=[])
except tiertrace.ConfigError as exc:
    print("ConfigError", exc)
except Exception as exc:
    print(type(exc).__name__, exc)
else:
    print("no error")
"""


def test_an_invalid_otel_variable_raises_config_error_naming_it() -> None:
    env = {"OTEL_BSP_MAX_QUEUE_SIZE": "16", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512"}
    out = subprocess.run(
        [sys.executable, "-c", BAD_OTEL_ENV],
        env={**_plain_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert out.startswith("ConfigError") and "OTEL_" in out, out


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TIERTRACE_", "OTEL_"))}


def test_instrument_client_with_an_unknown_or_foreign_tier_raises_config_error(
    make_telemetry: Any, redis_url: str, pg_dsn: str
) -> None:
    telemetry = make_telemetry(
        instrument=[],
        tiers=[
            Tier("session", 1, "redis", 0.00005),
            Tier("facts", 2, "postgresql", 0.001),
            Tier("semantic", 3, "chroma", 0.01),
        ],
    )
    client = redis.Redis.from_url(redis_url)
    with pytest.raises(ConfigError) as unknown:
        RedisInstrumentor().instrument_client(client, tier="sessions")
    assert "'sessions'" in str(unknown.value) and "['session']" in str(unknown.value)
    with pytest.raises(ConfigError, match="'facts' is a postgresql tier, not redis"):
        RedisInstrumentor().instrument_client(client, tier="facts")
    with pytest.raises(ConfigError, match="'x' is a chroma tier, not redis"):
        RedisInstrumentor().instrument_client(client, tier=Tier("x", 3, "chroma", 0.01))
    with pytest.raises(ConfigError, match="cannot bind"):
        RedisInstrumentor().instrument_client(object(), tier="session")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        with pytest.raises(ConfigError, match="'session' is a redis tier, not postgresql"):
            PsycopgInstrumentor().instrument_client(conn, tier="session")
        with pytest.raises(ConfigError, match="'nope' is not configured"):
            PsycopgInstrumentor().instrument_client(conn, tier="nope")
        conn.execute("SELECT 1").fetchall()
    with pytest.raises(ConfigError, match="'nope' is not configured"):
        tiertrace.ChromaInstrumentor().instrument_client(object(), tier="nope")
    client.get("k:1")  # a failed binding binds nothing
    assert telemetry.access_count() == 0
    # leave no patches behind (instrument_client patches the classes for good)
    for inst in (RedisInstrumentor(), PsycopgInstrumentor(), tiertrace.ChromaInstrumentor()):
        inst.instrument()
        inst.uninstrument()


# -- binary, non-UTF-8 and huge Redis keys -----------------------------------------------------

BINARY_KEYS = [
    b"\xff\xfe:42",
    b"\x00\x01bin:7",
    "ключ:42".encode(),
    b"user:\xc3\x28:99",
    b"\x80\x81\x82" + b"7",
    b"",
]


def test_binary_and_non_utf8_keys_are_templated_with_exact_hit_polarity(
    telemetry: Any, r: redis.Redis
) -> None:
    for key in BINARY_KEYS:
        r.set(key, b"\x00\xffvalue")
    for key in BINARY_KEYS:
        assert r.get(key) == b"\x00\xffvalue"
        assert r.get(key + b"\xfe") is None
    assert r.mget(BINARY_KEYS) == [b"\x00\xffvalue"] * len(BINARY_KEYS)
    assert r.mget([BINARY_KEYS[0], b"\xfe\xfe\x00"]) == [b"\x00\xffvalue", None]

    n = len(BINARY_KEYS)
    assert telemetry.access_count(db__operation__name="SET", tiertrace__hit=ABSENT) == n
    assert telemetry.access_count(db__operation__name="GET", tiertrace__hit=True) == n
    assert telemetry.access_count(db__operation__name="GET", tiertrace__hit=False) == n
    assert telemetry.access_count(db__operation__name="MGET", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="MGET", tiertrace__hit=False) == 1
    assert telemetry.access_count() == 3 * n + 2
    for span in telemetry.access_spans():
        assert not re.search(r"\d", span.name), span.name  # no digit of a key survives
        assert not re.search(r"[\x00-\x1f\x7f\ufffd]", span.name), span.name
        span.name.encode("utf-8")  # exportable text


def test_hash_mode_gives_distinct_non_utf8_keys_distinct_hashes(
    make_telemetry: Any, r: redis.Redis
) -> None:
    telemetry = make_telemetry(capture_keys="hash")
    keys = [b"\xff:1", b"\xfe:1"]
    for key in keys:
        r.get(key)
    names = [s.name for s in telemetry.access_spans()]
    assert names == ["GET " + key_hash(key) for key in keys]


def assert_bounded(telemetry: Any) -> None:
    for span in telemetry.spans():
        assert len(span.name) <= MAX_KEY_CHARS + MARGIN, len(span.name)
    for text in string_values(telemetry):
        assert len(text) <= MAX_SQL_CHARS + MARGIN, len(text)


@pytest.mark.parametrize("capture_keys", ["template", "raw", "hash", "none"])
def test_megabyte_keys_give_bounded_names_and_attributes_and_exact_hits(
    make_telemetry: Any, r: redis.Redis, capture_keys: str
) -> None:
    telemetry = make_telemetry(capture_keys=capture_keys)
    big = "user:" + "x" * 1_000_000 + ":42"
    other = b"doc:" + b"\xff7" * 500_000
    r.set(big, "v")
    assert r.get(big) == b"v"
    assert r.get(other) is None
    assert r.exists(other) == 0
    assert r.mget(big, other) == [b"v", None]
    with r.pipeline() as pipe:
        assert pipe.get(big).set(other, "w").execute() == [b"v", True]
    assert r.exists(other) == 1
    r.delete(big, other)
    tiertrace.flush()

    assert telemetry.access_count(db__operation__name="GET", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="GET", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="EXISTS", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="EXISTS", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="MGET", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="MULTI", tiertrace__hit=True) == 1
    assert telemetry.access_count() == 8
    assert_bounded(telemetry)
    if capture_keys == "template":
        assert "GET user:" + "x" * 100 in {s.name[:109] for s in telemetry.access_spans()}


@pytest.mark.parametrize("client", ["redis", "psycopg"])
def test_megabyte_keys_and_statements_are_not_retained_by_tiertrace(
    telemetry: Any, r: redis.Redis, pg_dsn: str, table: str, client: str
) -> None:
    def retained(suppressed: bool) -> int:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            tiertrace.flush()  # nothing pending that holds accesses
            gc.collect()
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            for i in range(16):
                payload = f"{i}:{suppressed}:" + "x" * 1_000_000
                if suppressed:
                    with suppress_instrumentation():
                        _one(r, conn, client, payload)
                else:
                    _one(r, conn, client, payload)
                del payload
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - base
            tracemalloc.stop()
        return kept

    try:
        without = retained(True)  # what the clients themselves keep (psycopg caches queries)
        kept = retained(False)
    finally:
        r.flushdb()
    assert kept - without < 4_000_000, f"tiertrace kept {(kept - without) / 1e6:.0f} MB"


def _one(r: redis.Redis, conn: psycopg.Connection[Any], client: str, payload: str) -> None:
    if client == "redis":
        r.set("big:" + payload, "v")
    else:
        conn.execute("SELECT body FROM memories WHERE body = '" + payload + "'").fetchall()


# -- huge SQL ----------------------------------------------------------------------------------


def test_100kb_statements_give_bounded_attributes_and_exact_hits(
    telemetry: Any, pg_dsn: str, table: str
) -> None:
    ids = ", ".join(str(i) for i in range(1, 20_001))
    pad = "'" + "z" * 10_000 + "' AS pad"  # the table comes after the first 8 kB
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert len(conn.execute(f"SELECT body FROM memories WHERE id IN ({ids})").fetchall()) == 3
        long_literal = "SELECT body FROM memories WHERE body = '" + "x" * 100_000 + "'"
        assert conn.execute(long_literal).fetchall() == []
        assert len(conn.execute(f"SELECT body, {pad} FROM memories").fetchall()) == 3
        comment = "SELECT body FROM memories WHERE id = %s /* " + "c" * 100_000 + " */"
        assert conn.execute(comment, (1,)).fetchone() == ("one",)
        conn.execute("INSERT INTO memories (id, body) VALUES (%s, '" + "y" * 100_000 + "')", (9,))
    assert telemetry.access_count(db__operation__name="SELECT", tiertrace__hit=True) == 3
    assert telemetry.access_count(db__operation__name="SELECT", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="INSERT", tiertrace__hit=ABSENT) == 1
    assert telemetry.access_count() == 5
    spans = telemetry.access_spans()
    assert [s.name for s in spans] == ["SELECT memories"] * 2 + ["SELECT"] + [
        "SELECT memories",
        "INSERT memories",
    ]
    assert_bounded(telemetry)
    assert all(len(s.attributes["db.query.text"]) <= MAX_SQL_CHARS for s in spans)


def test_a_long_insert_returning_is_a_read_with_a_hit(
    telemetry: Any, pg_dsn: str, table: str
) -> None:
    values = ", ".join(f"({i}, 'v')" for i in range(100, 600))  # about 6 kB of text
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute(f"INSERT INTO memories VALUES {values} RETURNING id").fetchall()
    assert len(rows) == 500
    assert telemetry.access_count(db__operation__name="INSERT", tiertrace__hit=True) == 1


# -- odd replies -------------------------------------------------------------------------------


def test_resp3_replies_keep_exact_hit_polarity(telemetry: Any, redis_url: str) -> None:
    with redis.Redis.from_url(redis_url, protocol=3) as c:
        c.hset("h:1", mapping={"a": "1"})
        c.sadd("s:1", "m")
        c.zadd("z:1", {"m": 1.5})
        assert c.hgetall("h:1") == {b"a": b"1"}
        assert c.hgetall("h:2") == {}
        assert c.smembers("s:1") == {b"m"}
        assert c.smembers("s:2") == set()
        assert c.zrange("z:1", 0, -1, withscores=True) == [[b"m", 1.5]]
        assert c.zrange("z:2", 0, -1, withscores=True) == []
        assert c.zscore("z:1", "m") == 1.5
        assert c.zscore("z:1", "absent") is None
        assert c.hget("h:1", "absent") is None
        assert c.exists("h:1", "s:1") == 2
    for op, hits, misses in [
        ("HGETALL", 1, 1),
        ("SMEMBERS", 1, 1),
        ("ZRANGE", 1, 1),
        ("ZSCORE", 1, 1),
        ("HGET", 0, 1),
        ("EXISTS", 1, 0),
    ]:
        assert telemetry.access_count(db__operation__name=op, tiertrace__hit=True) == hits, op
        assert telemetry.access_count(db__operation__name=op, tiertrace__hit=False) == misses, op
    assert telemetry.access_count() == 13  # HELLO on connect is housekeeping


async def test_async_resp3_replies_keep_exact_hit_polarity(telemetry: Any, redis_url: str) -> None:
    c = aioredis.Redis.from_url(redis_url, protocol=3)
    try:
        await c.flushdb()
        await c.hset("ah:1", mapping={"a": "1"})
        assert await c.hgetall("ah:1") == {b"a": b"1"}
        assert await c.hgetall("ah:2") == {}
        assert await c.smembers("as:1") == set()
    finally:
        await c.aclose()
    assert telemetry.access_count(db__operation__name="HGETALL", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="HGETALL", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="SMEMBERS", tiertrace__hit=False) == 1
    assert telemetry.access_count() == 4


def test_empty_values_and_null_rows_are_hits_and_absent_ones_are_misses(
    telemetry: Any, r: redis.Redis, pg_dsn: str, table: str
) -> None:
    with suppress_instrumentation(), psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO memories VALUES (4, NULL)")
    r.set("empty:1", "")
    r.rpush("list:1", "a")
    assert r.get("empty:1") == b""  # found, though empty
    assert r.mget("empty:1", "empty:1") == [b"", b""]
    assert r.lindex("list:1", 5) is None
    assert r.getdel("empty:1") == b""
    assert r.get("empty:1") is None
    select = "SELECT body FROM memories WHERE id = %s"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute(select, (4,)).fetchone() == (None,)
        assert conn.execute("SELECT NULL").fetchone() == (None,)
        assert conn.execute(select, (99,)).fetchone() is None
        with conn.transaction():
            with conn.cursor(name="nulls") as cur:  # server-side: decided at the fetch
                cur.execute(select, (4,))
                assert cur.fetchone() == (None,)
            with conn.cursor(name="none") as cur:
                cur.execute(select, (99,))
                assert cur.fetchall() == []
    assert telemetry.access_count(db__operation__name="GET", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="GET", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="MGET", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="LINDEX", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="GETDEL", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="SELECT", tiertrace__hit=True) == 3
    assert telemetry.access_count(db__operation__name="SELECT", tiertrace__hit=False) == 2
    assert telemetry.access_count() == 12


async def test_empty_pipelines_are_not_accesses(
    telemetry: Any, r: redis.Redis, redis_url: str
) -> None:
    with r.pipeline(transaction=False) as pipe:
        assert pipe.execute() == []
    with r.pipeline() as pipe:
        assert pipe.execute() == []
    c = aioredis.Redis.from_url(redis_url)
    try:
        async with c.pipeline() as apipe:
            assert await apipe.execute() == []
        async with c.pipeline(transaction=False) as apipe:
            assert await apipe.execute() == []
    finally:
        await c.aclose()
    assert telemetry.access_count() == 0
    assert telemetry.access_spans() == []


def test_pipelines_holding_error_replies_keep_hit_polarity_and_the_raw_results(
    telemetry: Any, r: redis.Redis
) -> None:
    r.set("str:1", "x")

    def run(transaction: bool, read_first: bool) -> list[Any]:
        with r.pipeline(transaction=transaction) as pipe:
            if read_first:
                pipe.hgetall("str:1")  # a read that fails: WRONGTYPE
            else:
                pipe.lpush("str:1", "y")  # a write that fails: WRONGTYPE
            pipe.get("str:1")
            return list(pipe.execute(raise_on_error=False))

    cases = [(False, False), (False, True), (True, False), (True, True)]
    with suppress_instrumentation():
        raw = [run(*case) for case in cases]
    got = [run(*case) for case in cases]
    assert [[type(x) for x in g] for g in got] == [[type(x) for x in g] for g in raw]
    assert all(isinstance(g[0], redis.ResponseError) and g[1] == b"x" for g in got)
    # the failed write does not spoil the read's hit; the failed read is a miss
    assert telemetry.access_count(db__operation__name="PIPELINE", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="PIPELINE", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="MULTI", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="MULTI", tiertrace__hit=False) == 1
    assert telemetry.access_count(error__type=ABSENT) == 5  # SET + 4 pipelines


def test_pipeline_and_transaction_failures_raise_what_the_client_raises(
    telemetry: Any, r: redis.Redis, redis_url: str
) -> None:
    r.set("str:1", "x")

    def wrongtype() -> Any:
        with r.pipeline(transaction=False) as pipe:
            return pipe.lpush("str:1", "y").get("str:1").execute()

    def watched() -> Any:
        with r.pipeline() as pipe, redis.Redis.from_url(redis_url) as other:
            pipe.watch("w:1")
            with suppress_instrumentation():
                other.set("w:1", "changed")
            pipe.multi()
            pipe.get("w:1")
            return pipe.execute()

    for call in (wrongtype, watched):
        with suppress_instrumentation():
            raw = raised_by(call)
        exc = raised_by(call)
        assert (type(exc), str(exc)) == (type(raw), str(raw))
    errors = [s for s in telemetry.access_spans() if s.status.status_code is StatusCode.ERROR]
    assert [(s.name, s.attributes["error.type"]) for s in errors] == [
        ("PIPELINE str:{id}", "ResponseError"),
        ("MULTI w:{id}", "WatchError"),
    ]
    assert telemetry.access_count(error__type="ResponseError") == 1
    assert telemetry.access_count(error__type="WatchError") == 1
    assert telemetry.access_count() == 3


def test_a_failed_pipeline_reports_the_redis_error_prefix(telemetry: Any, r: redis.Redis) -> None:
    r.set("str:1", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"), r.pipeline() as pipe:
        pipe.lpush("str:1", "y").execute()
    (span,) = [s for s in telemetry.access_spans() if s.name.startswith("MULTI")]
    assert span.attributes["db.response.status_code"] == "WRONGTYPE"


def test_a_burst_of_writes_after_a_miss_keeps_lookup_telemetry_bounded(
    telemetry: Any, r: redis.Redis
) -> None:
    r.get("bulk:absent")
    with r.pipeline(transaction=False) as pipe:
        for i in range(2000):
            pipe.set(f"bulk:{i}", "v")
            pipe.execute()  # 2000 one-command pipelines: 2000 writes, fast
    r.get("bulk:absent")
    tiertrace.flush()
    assert telemetry.access_count() == 2002
    assert telemetry.count("tiertrace.lookup.duration") == 2
    for text in string_values(telemetry):
        assert len(text) <= 64 * 1024, len(text)
    for log in telemetry.logs():
        assert len(log.log_record.body["payload"]["access_chain"]) <= 256


# -- random key bytes through a real client ----------------------------------------------------


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    head=st.binary(max_size=24),
    number=st.integers(min_value=10**11, max_value=10**12 - 1),
    tail=st.binary(max_size=24),
)
def test_no_digit_run_of_a_random_key_reaches_exported_telemetry(
    telemetry: Any, r: redis.Redis, head: bytes, number: int, tail: bytes
) -> None:
    telemetry.spans_exporter.clear()
    telemetry.logs_exporter.clear()
    key = head + str(number).encode() + tail
    r.delete(key)
    assert r.get(key) is None
    r.set(key, b"v")
    assert r.get(key) == b"v"
    r.delete(key)
    tiertrace.flush()
    runs = {m.decode() for m in re.findall(rb"[0-9]{6,}", key)} | {str(number)}
    for span in telemetry.access_spans():
        assert not re.search(r"\d", span.name), (key, span.name)
    found = [s for s in exported_strings(telemetry) if any(run in s for run in runs)]
    assert found == [], key
