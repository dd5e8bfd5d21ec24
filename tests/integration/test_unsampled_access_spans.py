"""Access spans the sampler drops: not exported, never started, their accesses still counted;
the decision is the SDK sampler's own for every kind of parent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest
import redis
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    DEFAULT_OFF,
    DEFAULT_ON,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from support.telemetry import Telemetry

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7


class CountingIds(RandomIdGenerator):
    """The SDK's random ids, counted: every span the SDK starts asks for a span id."""

    def __init__(self) -> None:
        self.span_ids = 0

    def generate_span_id(self) -> int:
        self.span_ids += 1
        return super().generate_span_id()


@contextmanager
def remote_parent(sampled: bool) -> Iterator[None]:
    """The context an incoming request with a ``traceparent`` header gives (remote parent)."""
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    parent = NonRecordingSpan(SpanContext(TRACE_ID, PARENT_ID, is_remote=True, trace_flags=flags))
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        yield
    finally:
        otel_context.detach(token)


def _gets(r: redis.Redis) -> None:
    r.get("user:1")  # a hit where the test set it, else a miss
    r.get("user:2")  # a miss


def test_accesses_under_an_unsampled_parent_export_no_span_and_are_still_counted(
    make_telemetry: Any, r: redis.Redis
) -> None:
    r.set("user:1", "alice")
    provider = TracerProvider(sampler=DEFAULT_ON)
    tel: Telemetry = make_telemetry(tracer_provider=provider)
    with remote_parent(sampled=False):
        _gets(r)
    with remote_parent(sampled=True):
        _gets(r)
    r.get("user:1")  # no parent: the root sampler (always on)
    with provider.get_tracer("app").start_as_current_span("handler") as handler:
        r.get("user:2")  # a sampled local parent

    spans = tel.access_spans()
    assert [(s.name, s.attributes["tiertrace.hit"]) for s in spans] == [  # type: ignore[index]
        ("GET user:{id}", True),
        ("GET user:{id}", False),
        ("GET user:{id}", True),
        ("GET user:{id}", False),
    ]
    handler_id = handler.get_span_context().span_id
    parents = [s.parent.span_id if s.parent else None for s in spans]
    assert parents == [PARENT_ID, PARENT_ID, None, handler_id]
    assert spans[0].context.trace_id == TRACE_ID
    assert tel.access_count(tiertrace__tier="redis", tiertrace__hit=True) == 3
    assert tel.access_count(tiertrace__tier="redis", tiertrace__hit=False) == 3


def test_parent_based_always_off_records_accesses_under_a_sampled_parent_only(
    make_telemetry: Any, r: redis.Redis
) -> None:
    tel: Telemetry = make_telemetry(tracer_provider=TracerProvider(sampler=DEFAULT_OFF))
    r.get("user:1")  # no parent: dropped by the root sampler (always off)
    with remote_parent(sampled=False):
        r.get("user:1")
    with remote_parent(sampled=True):
        r.get("user:1")

    (span,) = tel.access_spans()
    assert span.context.trace_id == TRACE_ID
    assert span.parent is not None and span.parent.span_id == PARENT_ID
    assert tel.access_count(tiertrace__tier="redis", tiertrace__hit=False) == 3


@pytest.mark.parametrize(
    ("sampler", "parents"),
    [
        (ALWAYS_OFF, [None, False]),
        (DEFAULT_OFF, [None, False]),
        (TraceIdRatioBased(0.0), [None]),
        (DEFAULT_ON, [False]),
    ],
    ids=["always_off", "parentbased_always_off", "traceidratio_0", "parentbased_always_on"],
)
def test_an_access_the_sampler_drops_starts_no_span(
    make_telemetry: Any, r: redis.Redis, sampler: Sampler, parents: list[bool | None]
) -> None:
    """``parents``: None for no parent, False for an unsampled remote parent."""
    ids = CountingIds()
    provider = TracerProvider(sampler=sampler, id_generator=ids)
    tel: Telemetry = make_telemetry(tracer_provider=provider)
    for parent in parents:
        with remote_parent(sampled=False) if parent is False else nullcontext():
            _gets(r)

    assert ids.span_ids == 0
    assert tel.access_spans() == []
    assert tel.access_count(tiertrace__tier="redis") == 2 * len(parents)


def test_the_sdks_own_span_metrics_still_count_every_dropped_access_span(
    make_telemetry: Any, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    sdk_reader = InMemoryMetricReader()
    provider = TracerProvider(
        sampler=ALWAYS_OFF, meter_provider=MeterProvider(metric_readers=[sdk_reader])
    )
    make_telemetry(tracer_provider=provider)
    _gets(r)

    data = sdk_reader.get_metrics_data()
    started = [
        (dict(p.attributes or {}), p.value)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "otel.sdk.span.started"
        for p in m.data.data_points
    ]
    assert started == [
        ({"otel.span.parent.origin": "none", "otel.span.sampling_result": "DROP"}, 2)
    ]
