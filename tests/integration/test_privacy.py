"""Privacy audit: a workload full of recognisable secrets across Redis, PostgreSQL, Chroma and
TieredMemory, then a scan of *everything* exported — span names, attributes, status
descriptions, events, links, log record bodies and attributes, metric labels — under the default
``capture_keys="template"`` and under ``"hash"`` and ``"none"``: no secret appears.

What counts as a secret here (DESIGN §6): Redis values; the ids inside Redis keys (digits,
UUIDs); SQL parameters and literals; Chroma ids, documents, metadata and where-clause values;
TieredMemory query texts; passwords in DSNs and URLs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode
from psycopg import sql

import tiertrace
from support.services import fill_table
from tiertrace import HashingEmbeddingFunction, TieredMemory

SECRET = "SECRET-7f3a9c"
KEY_ID = "918273645546"  # digits of Redis keys: templated away
KEY_UUID = "3f2b8c9d-1e4a-4b5c-9d8e-7f6a5b4c3d2e"
SQL_NUMBER = "4815162342"  # a numeric SQL literal
# "SECRET" alone too: a secret whose digits were templated away must not leak its letters
NEEDLES = ("SECRET", "7f3a9c", KEY_ID, KEY_UUID, SQL_NUMBER)


# -- what was exported -------------------------------------------------------------------------


def texts(value: Any) -> Iterator[str]:
    """Every string inside a value (mapping keys too), numbers as their text."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from texts(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from texts(v)
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif value is not None:
        yield str(value)


def exported_strings(telemetry: Any) -> list[str]:
    """Every string tiertrace exported: spans, events, links, logs, metric labels."""
    seen: list[str] = []
    for span in telemetry.spans():
        seen.append(span.name)
        seen.extend(texts(dict(span.attributes or {})))
        seen.extend(texts(span.status.description))
        for event in span.events:
            seen.append(event.name)
            seen.extend(texts(dict(event.attributes or {})))
        for link in span.links:
            seen.extend(texts(dict(link.attributes or {})))
    for log in telemetry.logs():
        record = getattr(log, "log_record", log)
        seen.extend(texts(record.body))
        seen.extend(texts(dict(record.attributes or {})))
        seen.extend(texts(getattr(record, "event_name", None)))
    data = telemetry.reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    seen.extend(texts(dict(point.attributes or {})))
                    for exemplar in getattr(point, "exemplars", None) or ():
                        seen.extend(texts(dict(exemplar.filtered_attributes or {})))
    return seen


def leaks(telemetry: Any, needles: tuple[str, ...] = NEEDLES) -> list[str]:
    return [s for s in exported_strings(telemetry) if any(n in s for n in needles)]


# -- the workload ------------------------------------------------------------------------------


@pytest.fixture
def facts(pg_dsn: str, table: str) -> str:
    rows = [(f"{SECRET}-fact", f"{SECRET}-body")]
    return fill_table(pg_dsn, "facts", "query text PRIMARY KEY, body text", rows)


@pytest.fixture
def redis_user(redis_url: str) -> Iterator[str]:
    """A URL with a user name and password (an ACL user of the private server)."""
    password = f"{SECRET}-redis-password"
    with redis.Redis.from_url(redis_url) as admin:  # ACL is housekeeping: not an access
        admin.acl_setuser(
            "tt-privacy", enabled=True, passwords=[f"+{password}"], commands=["+@all"], keys=["*"]
        )
        yield redis_url.replace("redis://", f"redis://tt-privacy:{password}@")
        admin.acl_deluser("tt-privacy")


def secret_dsn(pg_dsn: str) -> str:
    # trust authentication ignores the password, so it can be anything
    return pg_dsn.replace("postgres@", f"postgres:{SECRET}-pg-password@")


def redis_part(r: redis.Redis, user_url: str) -> None:
    profile = f"user:{KEY_ID}:profile"
    r.set(profile, f"{SECRET}-value")
    assert r.get(profile) == f"{SECRET}-value".encode()
    r.get(f"session:{KEY_ID}")
    r.set(f"token:{KEY_UUID}", f"{SECRET}-token", ex=60)
    r.getex(f"token:{KEY_UUID}", ex=30)
    r.hset(f"user:{KEY_ID}:prefs", mapping={"theme": f"{SECRET}-hash-value"})
    r.hgetall(f"user:{KEY_ID}:prefs")
    r.hget(f"user:{KEY_ID}:prefs", "theme")
    r.mset({f"m:{KEY_ID}:a": f"{SECRET}-mset", f"m:{KEY_ID}:b": f"{SECRET}-mset"})
    r.mget(f"m:{KEY_ID}:a", f"m:{KEY_ID}:b", f"m:{KEY_ID}:c")
    r.rpush(f"list:{KEY_ID}", f"{SECRET}-list")
    r.lrange(f"list:{KEY_ID}", 0, -1)
    r.sadd(f"set:{KEY_ID}", f"{SECRET}-member")
    r.sismember(f"set:{KEY_ID}", f"{SECRET}-member")
    r.zadd(f"z:{KEY_ID}", {f"{SECRET}-zmember": 1})
    r.zscore(f"z:{KEY_ID}", f"{SECRET}-zmember")
    with r.pipeline() as pipe:
        pipe.set(f"cart:{KEY_ID}", f"{SECRET}-pipeline").get(f"cart:{KEY_ID}").execute()
    with r.pipeline(transaction=False) as pipe:
        pipe.get(f"cart:{KEY_ID}").hgetall(f"user:{KEY_ID}:prefs").execute()
    r.delete(profile)
    with redis.Redis.from_url(user_url) as authed:
        authed.set(f"authed:{KEY_ID}", f"{SECRET}-authed")
        authed.get(f"authed:{KEY_ID}")


def postgres_part(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        select = "SELECT body FROM memories WHERE body = %s"
        conn.execute(select, (f"{SECRET}-sql-param",)).fetchall()
        conn.execute(
            f"SELECT body FROM memories WHERE body = '{SECRET}-sql-literal' OR id = {SQL_NUMBER}"
        ).fetchall()
        conn.execute(
            "SELECT body FROM memories WHERE body = %(b)s", {"b": f"{SECRET}-named-param"}
        ).fetchall()
        conn.execute(
            "INSERT INTO memories (id, body) VALUES (%s, %s)", (100, f"{SECRET}-insert-param")
        )
        conn.execute(f"UPDATE memories SET body = '{SECRET}-update-literal' WHERE id = 100")
        conn.execute(
            "UPDATE memories SET body = %s WHERE id = %s RETURNING id", (f"{SECRET}-ret", 100)
        ).fetchall()
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO memories (id, body) VALUES (%s, %s)",
                [(101, f"{SECRET}-many-1"), (102, f"{SECRET}-many-2")],
            )
            with cur.copy("COPY memories (id, body) FROM STDIN") as copy:
                copy.write_row((103, f"{SECRET}-copy"))
        composed = sql.SQL("SELECT body FROM memories WHERE body = {}").format(
            sql.Literal(f"{SECRET}-composed")
        )
        conn.execute(composed).fetchall()
        conn.execute(f"SELECT $tag${SECRET}-dollar-quoted$tag$").fetchall()
        conn.execute(f"SELECT E'{SECRET}-escape\\n', '{SECRET}-in-list' IN ('a', 'b')").fetchall()
        with conn.transaction(), conn.cursor(name="privacy") as cur:
            cur.execute(select, (f"{SECRET}-server-cursor",))
            cur.fetchall()


def chroma_part(client: Any) -> Any:
    col = client.get_or_create_collection(
        f"privacy-{uuid.uuid4().hex[:8]}", embedding_function=HashingEmbeddingFunction(dim=32)
    )
    col.add(
        ids=[f"{SECRET}-id-1", f"{SECRET}-id-2"],
        documents=[f"{SECRET}-document", "something else"],
        metadatas=[{"owner": f"{SECRET}-metadata"}, {"owner": "nobody"}],
    )
    col.query(
        query_texts=[f"{SECRET}-chroma-query"],
        n_results=2,
        where={"owner": f"{SECRET}-metadata"},
        where_document={"$contains": f"{SECRET}-document"},
    )
    col.get(ids=[f"{SECRET}-id-1"], where={"owner": {"$in": [f"{SECRET}-metadata"]}})
    col.update(ids=[f"{SECRET}-id-1"], documents=[f"{SECRET}-updated"])
    col.upsert(ids=[f"{SECRET}-id-3"], documents=[f"{SECRET}-upserted"])
    col.delete(where={"owner": f"{SECRET}-never"})
    return col


def memory_part(r: redis.Redis, dsn: str, collection: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        memory = TieredMemory(
            redis=r,
            postgres=conn,
            sql="SELECT body FROM facts WHERE query = %s",
            put_sql="INSERT INTO facts (query, body) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            chroma=collection,
            embedding_function=HashingEmbeddingFunction(dim=32),
        )
        memory.track_memory_access(f"{SECRET}-fact", user_id="u-1", query_type="recall")
        memory.track_memory_access(f"{SECRET}-fact", user_id="u-1", query_type="recall")
        memory.track_memory_access(f"what is {SECRET}-document?", query_type="recall")
        memory.track_memory_access(f"{SECRET}-nowhere {KEY_ID}", agent_id="planner")
        memory.put(f"{SECRET}-put-query", f"{SECRET}-put-value")
    with tiertrace.lookup(query_type="manual", user_id="u-2"):
        r.get(f"manual:{KEY_ID}")


@pytest.mark.parametrize("capture_keys", ["template", "hash", "none"])
def test_no_secret_of_the_workload_reaches_any_exported_telemetry(
    make_telemetry: Any,
    r: redis.Redis,
    redis_user: str,
    pg_dsn: str,
    facts: str,
    chroma_client: Any,
    capture_keys: str,
) -> None:
    telemetry = make_telemetry(capture_keys=capture_keys, advisor_min_accesses=1)
    dsn = secret_dsn(pg_dsn)
    redis_part(r, redis_user)
    postgres_part(dsn)
    collection = chroma_part(chroma_client)
    memory_part(r, dsn, collection)
    tiertrace.flush()

    # the scan is not vacuous: every tier, lookups and events were exported
    tiers = [s.attributes["tiertrace.tier"] for s in telemetry.access_spans()]
    assert {t: tiers.count(t) for t in set(tiers)} == {"redis": 30, "postgresql": 18, "chroma": 9}
    assert telemetry.count("tiertrace.lookup.duration") >= 5
    assert telemetry.logs()
    names = {s.name for s in telemetry.access_spans()}
    if capture_keys == "template":
        assert "GET user:{id}:profile" in names
    elif capture_keys == "none":
        assert "GET" in names
    else:
        assert any(n.startswith("GET h:") for n in names)
    assert leaks(telemetry) == []


@pytest.mark.parametrize(
    "case", ["sql parameter", "sql unique key", "redis arguments", "chroma where value"]
)
def test_error_messages_that_quote_data_never_reach_spans(
    telemetry: Any, r: redis.Redis, pg_dsn: str, facts: str, chroma_client: Any, case: str
) -> None:
    with pytest.raises(Exception, match=SECRET):  # the client quotes the data to the caller
        if case == "sql parameter":
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("SELECT * FROM memories WHERE id = %s", (f"{SECRET}-param",))
        elif case == "sql unique key":
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO facts VALUES (%s, 'x')", (f"{SECRET}-fact",))
        elif case == "redis arguments":
            r.execute_command("NOSUCHCOMMAND", f"user:{KEY_ID}", f"{SECRET}-argument")
        else:
            with suppress_instrumentation():
                col = chroma_client.create_collection(f"err-{uuid.uuid4().hex[:8]}")
            col.query(query_embeddings=[[1.0, 0.0]], where={"owner": {"$in": f"{SECRET}-w"}})
    (span,) = telemetry.access_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    assert leaks(telemetry) == []


def test_lua_script_bodies_never_become_span_names(telemetry: Any, r: redis.Redis) -> None:
    r.eval(f"return redis.call('SET', KEYS[1], '{SECRET}-in-script')", 1, f"user:{KEY_ID}")
    r.eval(f"return '{SECRET}-constant'", 0)
    assert len(telemetry.access_spans()) == 2
    assert leaks(telemetry) == []
