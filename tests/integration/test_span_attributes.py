"""Access span attributes: the same whichever way the SDK receives them, seen by the user's
samplers and span processors at start, within the provider's span limits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest
import redis
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

import tiertrace

SAMPLED_OUT_TIER = "sessions"


class TierSampler(Sampler):
    """Samples on ``tiertrace.tier``: drops the accesses of one tier, keeps the rest."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.seen.append(dict(attributes or {}))
        if (attributes or {}).get("tiertrace.tier") == SAMPLED_OUT_TIER:
            return SamplingResult(Decision.DROP)
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links)

    def get_description(self) -> str:
        return "TierSampler"


class StartRecorder(SpanProcessor):
    """Keeps the attributes each span has when it starts."""

    def __init__(self) -> None:
        self.at_start: list[dict[str, Any]] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.at_start.append(dict(span.attributes or {}))


def _init(sampler: Sampler | None = None, limits: SpanLimits | None = None) -> Any:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        **({"sampler": sampler} if sampler is not None else {}),
        **({"span_limits": limits} if limits is not None else {}),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tiertrace.init(
        exporter="none",
        tracer_provider=provider,
        tiers=[
            tiertrace.Tier(SAMPLED_OUT_TIER, 1, "redis", 0.00005, match=["session:*"]),
            tiertrace.Tier("cache", 1, "redis", 0.0001),
            tiertrace.Tier("rows", 2, "postgresql", 0.001),
        ],
    )
    return provider, exporter


@pytest.fixture
def stop() -> Iterator[None]:
    yield
    tiertrace.shutdown()


def _workload(r: redis.Redis, pg_dsn: str, table: str) -> None:
    r.set("user:1", "alice")
    r.get("user:1")  # hit
    r.get("user:2")  # miss
    r.mget("user:1", "user:2")  # 1 of 2 found
    r.get("session:1")  # the tier TierSampler drops
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"SELECT body FROM {table} WHERE id = %s", (1,)).fetchone()  # hit
        conn.execute(f"SELECT body FROM {table} WHERE id = %s", (9,)).fetchone()  # miss


def _access_spans(exporter: InMemorySpanExporter) -> list[tuple[str, dict[str, Any]]]:
    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    return [
        (s.name, dict(s.attributes or {}))
        for s in spans
        if (s.attributes or {}).get("tiertrace.tier") is not None
    ]


def test_access_spans_carry_the_same_attributes_whether_or_not_a_sampler_reads_them(
    stop: None, r: redis.Redis, pg_dsn: str, table: str
) -> None:
    _provider, exporter = _init()  # the SDK's default sampler: it never reads attributes
    _workload(r, pg_dsn, table)
    tiertrace.shutdown()
    r.flushdb()
    sampler = TierSampler()
    _provider, exporter_with_sampler = _init(sampler)
    _workload(r, pg_dsn, table)

    default = _access_spans(exporter)
    assert [name for name, _ in default] == [
        "SET user:{id}",
        "GET user:{id}",
        "GET user:{id}",
        "MGET user:{id}",
        "GET session:{id}",
        f"SELECT {table}",
        f"SELECT {table}",
    ]
    assert [a.get("tiertrace.hit") for _, a in default] == [
        None,
        True,
        False,
        False,
        False,
        True,
        False,
    ]
    assert default[3][1]["tiertrace.keys.requested"] == 2
    assert default[3][1]["tiertrace.keys.hit"] == 1
    assert default[5][1]["db.response.returned_rows"] == 1
    # the sampler dropped the one access of its tier; every other span is the same
    assert _access_spans(exporter_with_sampler) == default[:4] + default[5:]


def test_a_sampler_of_your_own_sees_the_access_attributes_at_start(
    stop: None, r: redis.Redis
) -> None:
    sampler = TierSampler()
    _provider, exporter = _init(sampler)
    r.get("session:1")
    r.get("user:1")

    starts = [a for a in sampler.seen if "tiertrace.tier" in a]
    assert [(a["tiertrace.tier"], a["db.operation.name"]) for a in starts] == [
        (SAMPLED_OUT_TIER, "GET"),
        ("cache", "GET"),
    ]
    assert [n for n, _ in _access_spans(exporter)] == ["GET user:{id}"]


def test_a_span_processor_of_your_own_sees_the_access_attributes_when_the_span_starts(
    stop: None, r: redis.Redis
) -> None:
    provider, _exporter = _init()
    r.get("user:1")  # before the processor is added
    recorder = StartRecorder()
    provider.add_span_processor(recorder)
    r.get("user:2")

    (attrs,) = [a for a in recorder.at_start if "tiertrace.tier" in a]
    assert attrs["tiertrace.tier"] == "cache"
    assert attrs["db.operation.name"] == "GET"
    assert attrs["db.system.name"] == "redis"


def test_the_providers_attribute_length_limit_cuts_access_span_attributes(
    stop: None, pg_dsn: str, table: str
) -> None:
    _provider, exporter = _init(limits=SpanLimits(max_span_attribute_length=10))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"SELECT body FROM {table} WHERE id = %s", (1,)).fetchone()

    ((_name, attrs),) = _access_spans(exporter)
    assert attrs["db.query.text"] == "SELECT bod"
    assert attrs["db.system.name"] == "postgresql"[:10]
    assert attrs["tiertrace.hit"] is True
