"""The bridge: tiertrace's aggregation slots enter the OpenTelemetry pipeline at collection.

tiertrace aggregates; the SDK exports. The Python SDK has no MetricProducer yet
(open-telemetry/opentelemetry-python#4768), so the bridge sits at the reader: `attach` wraps the
collect callback a ``MeterProvider`` gives each of its readers, and every collection of that
reader (a periodic OTLP or console export, a Prometheus scrape, an in-memory read, the final
collection at shutdown) returns the SDK's own data plus tiertrace's points: the histograms
``tiertrace.access.duration`` and ``tiertrace.lookup.duration`` (explicit bounds of DESIGN §4,
with the latest sampled exemplar of each point), ``db.client.operation.duration`` when asked
for, and the sums ``tiertrace.cost.usd`` and ``tiertrace.self.errors`` — in tiertrace's
instrumentation scope, with the names, units and attributes of the contract
(`tiertrace._contract.names`).

Temporality follows the reader's preference for histograms and counters: cumulative points
start at ``init()``; delta points start at the reader's previous collection and hold what
happened since (min and max stay those since ``init()``: the slots keep no per-interval
extremes).

A reader is attached before or after its ``MeterProvider`` is built; attaching twice is a no-op.
The points come from ``source()``, asked at each collection, so a reader outlives
``shutdown()`` and a new ``init()`` and always reports the live aggregation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.metrics import Exemplar as SdkExemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from tiertrace._contract.names import (
    ACCESS_DURATION,
    COST,
    LOOKUP_DURATION,
    SCOPE,
    SELF_ERRORS,
    SEMCONV_DURATION,
    TIER,
    TIER_LEVEL,
    Instrument,
)
from tiertrace._core import recorder
from tiertrace._core.aggregation import Table
from tiertrace._core.metrics import Metrics
from tiertrace._version import __version__

Source = Callable[[], "Metrics | None"]
MARK = "_tiertrace_bridge"
_DELTA = AggregationTemporality.DELTA
_CUMULATIVE = AggregationTemporality.CUMULATIVE


class _ReaderState:
    """What one reader saw at its previous collection (for delta temporality)."""

    def __init__(self) -> None:
        self.metrics: Metrics | None = None
        self.last_ns = 0
        self.previous: dict[tuple[str, Any], tuple[Any, ...]] = {}
        self.lock = threading.Lock()


def attached(reader: Any) -> bool:
    """Whether tiertrace's points are merged into what ``reader`` collects."""
    return getattr(reader, MARK, None) is not None


def attach(reader: Any, source: Source) -> Any:
    """Merge tiertrace's points into every collection of ``reader``; returns the reader."""
    if attached(reader):
        return reader
    state = _ReaderState()
    original = reader._set_collect_callback

    def wrap(collect: Callable[..., Any]) -> Callable[..., Any]:
        def merged(r: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            data = collect(r, timeout_millis=timeout_millis, **kwargs)
            try:
                return _merge(data, r, state, source(), collect)
            except Exception as fault:  # never lose the SDK's own data to a fault of ours
                recorder.report_fault("bridge", fault)
                return data

        return merged

    def set_callback(collect: Callable[..., Any] | None) -> None:
        original(None if collect is None else wrap(collect))

    reader._set_collect_callback = set_callback
    if getattr(reader, "_collect", None) is not None:  # already registered on a provider
        original(wrap(reader._collect))
    setattr(reader, MARK, state)
    return reader


def _temporality(reader: Any, kind: str) -> AggregationTemporality:
    for cls, value in getattr(reader, "_instrument_class_temporality", {}).items():
        if cls.__name__ == kind:
            return value  # type: ignore[no-any-return]
    return _CUMULATIVE


def _resource(data: MetricsData | None, collect: Any) -> Resource:
    if data is not None and data.resource_metrics:
        return data.resource_metrics[0].resource
    config = getattr(getattr(collect, "__self__", None), "_sdk_config", None)
    resource = getattr(config, "resource", None)
    return resource if isinstance(resource, Resource) else Resource.create()


def _merge(
    data: MetricsData | None,
    reader: Any,
    state: _ReaderState,
    metrics: Metrics | None,
    collect: Any,
) -> MetricsData | None:
    if metrics is None:
        return data
    hist = _temporality(reader, "_Histogram")
    counter = _temporality(reader, "_Counter")
    with state.lock:
        if state.metrics is not metrics:  # a new init(): cumulative values restart
            state.metrics, state.previous, state.last_ns = metrics, {}, metrics.start_ns
        now = time.time_ns()
        ours: list[Metric] = []
        tables = [(ACCESS_DURATION, metrics.access), (LOOKUP_DURATION, metrics.lookup)]
        if metrics.semconv is not None:
            tables.append((SEMCONV_DURATION, metrics.semconv))
        for spec, table in tables:
            points = list(_histogram_points(spec, table, hist, state, now))
            if points:
                ours.append(_metric(spec, Histogram(points, hist)))
        costs = [
            ((name,), {TIER: tier.name, TIER_LEVEL: tier.level}, spent)
            for name, (tier, spent) in metrics.costs().items()
        ]
        errors = [((key,), slot.attributes, slot.value) for key, slot in metrics.errors.items()]
        for spec, values in ((COST, costs), (SELF_ERRORS, errors)):
            sums = list(_sum_points(spec, values, counter, state, now))
            if sums:
                ours.append(_metric(spec, Sum(sums, counter, is_monotonic=True)))
        state.last_ns = now
    if not ours:
        return data
    return _combine(data, ours, _resource(data, collect))


def _metric(spec: Instrument, data: Any) -> Metric:
    return Metric(name=spec.name, description=spec.description, unit=spec.unit, data=data)


def _histogram_points(
    spec: Instrument,
    table: Table,
    temporality: AggregationTemporality,
    state: _ReaderState,
    now: int,
) -> Iterable[HistogramDataPoint]:
    delta = temporality is _DELTA
    assert state.metrics is not None
    start = state.last_ns if delta else state.metrics.start_ns
    for key, slot in table.items():
        p = slot.point()
        counts, count, total = list(p.bucket_counts), p.recorded, p.sum
        if delta:
            before = state.previous.get((spec.name, key))
            state.previous[(spec.name, key)] = (p.bucket_counts, p.recorded, p.sum)
            if before is not None:
                counts = [a - b for a, b in zip(counts, before[0], strict=True)]
                count, total = count - before[1], total - before[2]
        if count <= 0:
            continue
        exemplars = []
        ex = p.exemplar
        if ex is not None and (not delta or ex.time_ns > start):
            exemplars.append(
                SdkExemplar(
                    filtered_attributes=None,
                    value=ex.value,
                    time_unix_nano=ex.time_ns,
                    span_id=ex.span_id,
                    trace_id=ex.trace_id,
                )
            )
        yield HistogramDataPoint(
            attributes=p.attributes,
            start_time_unix_nano=start,
            time_unix_nano=now,
            count=count,
            sum=total,
            bucket_counts=counts,
            explicit_bounds=list(slot.bounds),
            min=p.min,
            max=p.max,
            exemplars=exemplars,
        )


def _sum_points(
    spec: Instrument,
    values: list[tuple[tuple[Any, ...], dict[str, Any], float]],
    temporality: AggregationTemporality,
    state: _ReaderState,
    now: int,
) -> Iterable[NumberDataPoint]:
    delta = temporality is _DELTA
    assert state.metrics is not None
    start = state.last_ns if delta else state.metrics.start_ns
    for key, attributes, value in values:
        shown = value
        if delta:
            before = state.previous.get((spec.name, key))
            state.previous[(spec.name, key)] = (value,)
            shown = value - (before[0] if before is not None else 0.0)
            if shown == 0:
                continue
        yield NumberDataPoint(
            attributes=attributes, start_time_unix_nano=start, time_unix_nano=now, value=shown
        )


def _combine(data: MetricsData | None, ours: list[Metric], resource: Resource) -> MetricsData:
    scope = InstrumentationScope(SCOPE, __version__)
    if data is None or not data.resource_metrics:
        return MetricsData(
            resource_metrics=[
                ResourceMetrics(
                    resource=resource,
                    scope_metrics=[ScopeMetrics(scope=scope, metrics=ours, schema_url="")],
                    schema_url=resource.schema_url,
                )
            ]
        )
    first, *rest = data.resource_metrics
    scopes = list(first.scope_metrics)
    for i, sm in enumerate(scopes):
        if sm.scope.name == SCOPE:  # tiertrace's observable gauges: one scope for all
            scopes[i] = ScopeMetrics(
                scope=sm.scope, metrics=[*sm.metrics, *ours], schema_url=sm.schema_url
            )
            break
    else:
        scopes.append(ScopeMetrics(scope=scope, metrics=ours, schema_url=""))
    merged = ResourceMetrics(
        resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url
    )
    return MetricsData(resource_metrics=[merged, *rest])
