"""PostgreSQL accesses: exact counts, rows and hits, server cursors, pipelines, async, pools."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode

import tiertrace
from support.tracebacks import raised_inside


def test_mixed_workload_gives_exact_counts_and_skips_housekeeping(
    telemetry: Any, pg_dsn: str, table: str
) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("SELECT body FROM memories WHERE id = %s", (1,)).fetchone()  # hit
        conn.execute("SELECT body FROM memories WHERE id = %s", (99,)).fetchone()  # miss
        conn.execute("SET application_name = 'x'")  # housekeeping
        conn.execute("SHOW application_name")  # housekeeping
        with conn.cursor() as cur:
            cur.execute("INSERT INTO memories VALUES (%s, %s)", (10, "ten"))  # write
            cur.executemany(
                "INSERT INTO memories VALUES (%s, %s)", [(11, "a"), (12, "b"), (13, "c")]
            )
            cur.execute("UPDATE memories SET body = 'x' WHERE id = 10 RETURNING id")  # read, hit
            cur.execute("DELETE FROM memories WHERE id = 999 RETURNING id")  # read, miss
        conn.commit()

    assert telemetry.access_count(db__operation__name="SELECT", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="SELECT", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="INSERT", tiertrace__hit="<absent>") == 2
    assert telemetry.access_count(db__operation__name="UPDATE", tiertrace__hit=True) == 1
    assert telemetry.access_count(db__operation__name="DELETE", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="SET") == 0
    assert telemetry.access_count(db__operation__name="SHOW") == 0
    assert telemetry.access_count(tiertrace__tier="postgresql", tiertrace__tier__level=2) == 6
    many = [s for s in telemetry.access_spans() if s.attributes.get("db.operation.batch.size")]
    assert [s.attributes["db.operation.batch.size"] for s in many] == [3]


def test_span_carries_sanitized_sql_summary_and_rows(
    telemetry: Any, pg_dsn: str, table: str
) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("SELECT body FROM memories WHERE body = 'one' OR id IN (1, 2, 3)").fetchall()
    (span,) = telemetry.access_spans()
    assert span.name == "SELECT memories"
    assert span.attributes["db.query.summary"] == "SELECT memories"
    assert span.attributes["db.collection.name"] == "memories"
    assert span.attributes["db.response.returned_rows"] == 3
    text = span.attributes["db.query.text"]
    assert "'one'" not in text and "IN (?)" in text
    assert span.attributes["db.namespace"] == pg_dsn.rsplit("/", 1)[1]
    assert span.attributes["server.port"] == 5432


def test_server_cursor_hit_is_decided_at_first_fetch(
    telemetry: Any, pg_dsn: str, table: str
) -> None:
    with psycopg.connect(pg_dsn) as conn:
        with conn.cursor(name="found") as cur:
            cur.execute("SELECT * FROM memories WHERE id <= %s", (2,))
            assert telemetry.access_count() == 0  # not known yet: still open
            assert len(cur.fetchall()) == 2
        with conn.cursor(name="missing") as cur:
            cur.execute("SELECT * FROM memories WHERE id > %s", (100,))
            assert cur.fetchone() is None
        with conn.cursor(name="iterated") as cur:
            cur.execute("SELECT * FROM memories")
            assert len(list(cur)) == 3
        with conn.cursor(name="never-fetched") as cur:
            cur.execute("SELECT * FROM memories")
    assert telemetry.access_count(tiertrace__hit=True) == 2
    assert telemetry.access_count(tiertrace__hit=False) == 1
    # never fetched: closed with the cursor, without a hit attribute (never a false miss)
    assert telemetry.access_count(db__operation__name="SELECT", tiertrace__hit="<absent>") == 1


def test_pipeline_mode_results_arrive_at_sync(telemetry: Any, pg_dsn: str, table: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        with conn.pipeline():
            hit = conn.execute("SELECT * FROM memories WHERE id = 1")
            miss = conn.execute("SELECT * FROM memories WHERE id = 42")
        assert hit.fetchone() is not None
        assert miss.fetchone() is None
    assert telemetry.access_count(tiertrace__hit=True) == 1
    assert telemetry.access_count(tiertrace__hit=False) == 1


def test_sql_error_sets_sqlstate_and_reraises_unchanged(telemetry: Any, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn, pytest.raises(psycopg.errors.UndefinedTable) as caught:
        conn.execute("SELECT * FROM no_such_table")
    assert 'relation "no_such_table" does not exist' in str(caught.value)
    # psycopg's own exception, re-raised by psycopg itself (it cuts the traceback to its frame)
    assert caught.type is psycopg.errors.UndefinedTable
    assert raised_inside(caught.value, psycopg)
    (span,) = telemetry.access_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "UndefinedTable"
    assert span.attributes["db.response.status_code"] == "42P01"


async def test_async_connection_and_pool_are_instrumented(
    telemetry: Any, pg_dsn: str, table: str
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        cur = await conn.execute("SELECT pg_sleep(0.2), body FROM memories WHERE id = 1")
        assert await cur.fetchone() is not None
        async with conn.cursor(name="srv") as scur:
            await scur.execute("SELECT * FROM memories WHERE id = 77")
            assert await scur.fetchall() == []
    async with (
        psycopg_pool.AsyncConnectionPool(pg_dsn, min_size=1, open=False) as pool,
        pool.connection() as conn,
    ):
        await (await conn.execute("SELECT * FROM memories WHERE id = 2")).fetchone()
    slow = [p for a, p in telemetry.points("tiertrace.access.duration") if a.get("tiertrace.hit")]
    assert sum(p.count for p in slow) == 2
    assert max(p.sum for p in slow) >= 0.2
    assert telemetry.access_count(tiertrace__hit=False) == 1


def test_sync_pool_connections_are_instrumented(telemetry: Any, pg_dsn: str, table: str) -> None:
    with psycopg_pool.ConnectionPool(pg_dsn, min_size=1, max_size=2) as pool:
        for i in (1, 2, 50):
            with pool.connection() as conn:
                conn.execute("SELECT body FROM memories WHERE id = %s", (i,)).fetchone()
    assert telemetry.access_count(tiertrace__hit=True) == 2
    assert telemetry.access_count(tiertrace__hit=False) == 1


def test_copy_block_is_one_write_access(telemetry: Any, pg_dsn: str, table: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        with conn.cursor() as cur, cur.copy("COPY memories (id, body) FROM STDIN") as copy:
            copy.write_row((20, "twenty"))
            copy.write_row((21, "twenty-one"))
        conn.commit()
    assert telemetry.access_count(db__operation__name="COPY", tiertrace__hit="<absent>") == 1


def test_table_match_routes_statements_to_tiers(
    make_telemetry: Any, pg_dsn: str, table: str
) -> None:
    telemetry = make_telemetry(
        tiers=[
            tiertrace.Tier("redis", 1, "redis", 0.0001),
            tiertrace.Tier("facts", 2, "postgresql", 0.002, match=["facts"]),
            tiertrace.Tier("memories", 2, "postgresql", 0.001, match=["memories"]),
        ]
    )
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("SELECT * FROM memories").fetchall()
        conn.execute("SELECT 1").fetchall()  # matches no tier: left alone
    assert telemetry.access_count(tiertrace__tier="memories") == 1
    assert telemetry.access_count() == 1


def test_error_messages_quoting_values_stay_off_spans_unless_asked(
    make_telemetry: Any, pg_dsn: str
) -> None:
    with suppress_instrumentation(), psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS notes")
        conn.execute("CREATE TABLE notes (body text PRIMARY KEY)")
        conn.execute("INSERT INTO notes VALUES ('secret-body')")

    def duplicate(telemetry: Any) -> Any:
        with (
            psycopg.connect(pg_dsn, autocommit=True) as conn,
            pytest.raises(psycopg.errors.UniqueViolation, match="secret-body"),
        ):
            conn.execute("INSERT INTO notes VALUES (%s)", ("secret-body",))
        (span,) = telemetry.access_spans()
        return span

    span = duplicate(make_telemetry())
    text = repr(span.status.description) + repr([dict(e.attributes) for e in span.events])
    assert "secret-body" not in text
    assert span.attributes["db.response.status_code"] == "23505"
    assert [e.attributes["exception.type"] for e in span.events] == [
        "psycopg.errors.UniqueViolation"
    ]
    tiertrace.shutdown()
    span = duplicate(make_telemetry(capture_error_messages=True))
    assert "secret-body" in str(span.status.description)
