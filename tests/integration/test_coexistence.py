"""With the contrib redis / psycopg instrumentations active too: one span per access, and
uninstrumenting in any order restores the clients."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import redis
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor as ContribPsycopg
from opentelemetry.instrumentation.redis import RedisInstrumentor as ContribRedis

import tiertrace


def _instrumented(inst: Any, contrib: list[Any], make_telemetry: Any, contrib_first: bool) -> Any:
    """The contrib instrumentor ``inst`` and tiertrace both on, ``inst`` first or second; the
    telemetry of tiertrace (the second one shares its tracer provider)."""
    contrib.append(inst)
    if contrib_first:
        inst.instrument()
        return make_telemetry()
    telemetry = make_telemetry()
    inst.instrument(tracer_provider=telemetry.handle.telemetry.tracer_provider)
    return telemetry


@pytest.mark.parametrize("contrib_first", [True, False])
def test_contrib_redis_and_tiertrace_give_one_span_per_access(
    make_telemetry: Any, contrib: list[Any], r: redis.Redis, contrib_first: bool
) -> None:
    telemetry = _instrumented(ContribRedis(), contrib, make_telemetry, contrib_first)
    r.set("c:1", "v")
    r.get("c:1")
    r.get("c:2")
    with r.pipeline() as pipe:
        pipe.get("c:1").execute()
    tiertrace.flush()
    assert telemetry is not None
    spans = [s for s in telemetry.spans() if not s.name.startswith(("tiertrace.lookup", "lookup"))]
    assert len(spans) == 4, [s.name for s in spans]
    assert sorted(
        s.attributes["tiertrace.hit"] for s in spans if "tiertrace.hit" in s.attributes
    ) == [False, True, True]
    assert telemetry.access_count() == 4


@pytest.mark.parametrize("contrib_first", [True, False])
def test_contrib_psycopg_and_tiertrace_give_one_span_per_access(
    make_telemetry: Any, contrib: list[Any], pg_dsn: str, table: str, contrib_first: bool
) -> None:
    telemetry = _instrumented(ContribPsycopg(), contrib, make_telemetry, contrib_first)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SELECT * FROM memories WHERE id = %s", (1,)).fetchall()
        conn.execute("SELECT * FROM memories WHERE id = %s", (9,)).fetchall()
    tiertrace.flush()
    assert telemetry is not None
    spans = [s for s in telemetry.spans() if not s.name.startswith(("tiertrace.lookup", "lookup"))]
    assert len(spans) == 2, [s.name for s in spans]
    assert sorted(s.attributes["tiertrace.hit"] for s in spans) == [False, True]


@pytest.mark.parametrize("order", ["tiertrace-first", "contrib-first"])
def test_uninstrument_in_any_order_restores_redis(order: str) -> None:
    original = redis.Redis.__dict__["execute_command"]
    inst = ContribRedis()
    tiertrace.init(exporter="none")
    inst.instrument()
    if order == "tiertrace-first":
        tiertrace.shutdown()
        inst.uninstrument()
    else:
        inst.uninstrument()
        tiertrace.shutdown()
    assert redis.Redis.__dict__["execute_command"] is original
