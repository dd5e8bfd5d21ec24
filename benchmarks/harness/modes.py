"""The configurations an overhead run switches between, and the proof that raw is raw.

* ``raw`` — nothing instrumented (`Pristine.check` after every switch: every patched client
  method is the library's own function again);
* ``metrics`` — ``tiertrace.init(exporter="none")``, SDK ``TracerProvider`` with ALWAYS_OFF, SDK
  ``MeterProvider`` read by an ``InMemoryMetricReader`` passed through ``tiertrace.bridge_reader``
  (the path of every reader tiertrace builds);
* ``full`` — the same with ALWAYS_ON, a ``BatchSpanProcessor`` and a ``BatchLogRecordProcessor``
  into no-op exporters (what ``exporter="otlp"`` wires);
* ``anchor`` — opentelemetry-instrumentation-redis, -psycopg and openllmetry's -chromadb with the
  providers of ``full`` (spans only);
* ``anchor_metrics`` — opentelemetry-instrumentation-psycopg alone, with
  ``OTEL_SEMCONV_STABILITY_OPT_IN=database``, which adds the ``db.client.operation.duration``
  histogram. That instrumentation takes no meter provider: it records to the global one, so the
  first activation installs a process-wide SDK ``MeterProvider`` with its own reader (no other
  configuration uses the global provider). Only PostgreSQL operations run under it;
* ``span`` — nothing instrumented, and each timed call wrapped in a bare recorded span (start,
  end, ``BatchSpanProcessor`` into a no-op exporter; `around_span`): the SDK's floor where the
  call runs, after the client's own work, for the operations of the goals;
* ``unsampled`` — ``full``'s providers with the SDK's default sampler (parent-based, always on)
  and every timed call under a remote parent that is not sampled (an incoming request whose
  ``traceparent`` says so; `unsampled_parent`): tracing on, the request not sampled, for the
  operations of the goals.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
from opentelemetry import context as otel_context
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, DEFAULT_ON
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    set_span_in_context,
)

import tiertrace

CONFIGS = ("raw", "metrics", "full", "anchor", "anchor_metrics", "span", "unsampled")
TIERTRACE_CONFIGS = ("metrics", "full", "unsampled")
SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"


class CountingSpanExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class CountingLogExporter(LogRecordExporter):  # type: ignore[misc]
    def __init__(self) -> None:
        self.count = 0

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        self.count += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _patch_targets() -> list[tuple[str, type]]:
    import chromadb.api.models.Collection as chroma_collection
    import chromadb.api.segment as chroma_segment
    import redis.asyncio.client as aclient
    import redis.client as sclient

    classes: list[type] = [
        sclient.Redis,
        sclient.Pipeline,
        aclient.Redis,
        aclient.Pipeline,
        psycopg.Cursor,
        psycopg.AsyncCursor,
        psycopg.ServerCursor,
        psycopg.AsyncServerCursor,
        psycopg.Connection,
        psycopg.AsyncConnection,
        chroma_collection.Collection,
        chroma_segment.SegmentAPI,
    ]
    return [(f"{c.__module__}.{c.__qualname__}", c) for c in classes]


def _func(value: Any) -> Any:
    """The function behind a class attribute (a restored classmethod may come back bound)."""
    inner = getattr(value, "__func__", None)
    return value if inner is None else inner


class Pristine:
    """The client classes as the libraries define them, to prove the raw configuration raw."""

    def __init__(self) -> None:
        self.targets = _patch_targets()
        self.saved = {
            name: {k: _func(v) for k, v in vars(cls).items()} for name, cls in self.targets
        }
        self.connect = psycopg.connect

    def check(self) -> None:
        import wrapt

        proxy = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)
        bad = []
        for name, cls in self.targets:
            saved = self.saved[name]
            for key, value in vars(cls).items():
                if isinstance(value, proxy) or saved.get(key) is not _func(value):
                    bad.append(f"{name}.{key}")
        if psycopg.connect is not self.connect or isinstance(psycopg.connect, proxy):
            bad.append("psycopg.connect")
        if redis.Redis.__dict__["execute_command"] is not self.saved["redis.client.Redis"].get(
            "execute_command"
        ):
            bad.append("redis.Redis.execute_command")
        if tiertrace.handle() is not None:
            bad.append("tiertrace handle still live")
        if bad:
            raise SystemExit(f"raw configuration is not raw: {sorted(set(bad))}")


def histogram_count(reader: InMemoryMetricReader, name: str = "tiertrace.access.duration") -> int:
    """Points recorded so far into the histogram ``name`` (cumulative)."""
    data = reader.get_metrics_data()
    total = 0
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    total += sum(p.count for p in m.data.data_points)
    return total


def set_semconv_opt_in(value: str | None) -> str | None:
    """Set ``OTEL_SEMCONV_STABILITY_OPT_IN`` for the contrib instrumentations; return the old
    value. They read it once per process, so the cached choice is reset here."""
    from opentelemetry.instrumentation._semconv import (
        _OpenTelemetrySemanticConventionStability as Stability,
    )

    before = os.environ.get(SEMCONV_OPT_IN)
    if value is None:
        os.environ.pop(SEMCONV_OPT_IN, None)
    else:
        os.environ[SEMCONV_OPT_IN] = value
    with Stability._lock:
        Stability._initialized = False
    Stability._initialize()
    return before


class _GlobalMeter:
    """The process-wide SDK meter provider the contrib psycopg instrumentation records to."""

    reader: InMemoryMetricReader | None = None

    @classmethod
    def install(cls) -> InMemoryMetricReader:
        if cls.reader is None:
            from opentelemetry import metrics

            cls.reader = InMemoryMetricReader()
            metrics.set_meter_provider(MeterProvider(metric_readers=[cls.reader]))
        return cls.reader


@dataclass
class Active:
    name: str
    providers: list[Any] = field(default_factory=list)
    spans: CountingSpanExporter | None = None
    logs: CountingLogExporter | None = None
    reader: InMemoryMetricReader | None = None
    anchors: list[Any] = field(default_factory=list)
    metric: str = "tiertrace.access.duration"
    points_before: int = 0
    restore_opt_in: tuple[str | None] | None = None  # (value) to put back on close
    tracer: Any = None  # ``span``: the tracer of the bare spans (`around_span`)
    token: object = None  # ``unsampled``: the attached parent context, detached on close

    def close(self) -> dict[str, int]:
        """Switch back to raw; return how much telemetry this activation produced."""
        if self.name in TIERTRACE_CONFIGS:
            tiertrace.shutdown()
        for anchor in self.anchors:
            anchor.uninstrument()
        produced = {"spans": 0, "logs": 0}
        if self.reader is not None:
            points = histogram_count(self.reader, self.metric) - self.points_before
            produced["metric_points"] = points
        for provider in self.providers:
            provider.shutdown()
        produced["spans"] = self.spans.count if self.spans else 0
        produced["logs"] = self.logs.count if self.logs else 0
        if self.restore_opt_in is not None:
            set_semconv_opt_in(self.restore_opt_in[0])
        if self.token is not None:
            otel_context.detach(self.token)  # type: ignore[arg-type]
        return produced


def unsampled_parent() -> Any:
    """The context of an incoming request whose ``traceparent`` says "not sampled"."""
    parent = SpanContext(0x5EED, 0x5EED, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    return set_span_in_context(NonRecordingSpan(parent))


def around_span(fn: Callable[[], Any], tracer: Any, is_async: bool) -> Callable[[], Any]:
    """``fn`` inside a bare recorded span (the ``span`` configuration)."""
    start = tracer.start_span
    if is_async:

        async def spanned_async() -> Any:
            span = start("call", kind=SpanKind.CLIENT)
            try:
                return await fn()
            finally:
                span.end()

        return spanned_async

    def spanned() -> Any:
        span = start("call", kind=SpanKind.CLIENT)
        try:
            return fn()
        finally:
            span.end()

    return spanned


def activate(name: str) -> Active:
    """Switch from raw to the configuration ``name``."""
    if name == "raw":
        return Active(name)
    if name == "span":
        spans = CountingSpanExporter()
        tp = TracerProvider(sampler=ALWAYS_ON)
        tp.add_span_processor(BatchSpanProcessor(spans))
        return Active(name, [tp], spans, tracer=tp.get_tracer("bench"))
    if name == "anchor_metrics":
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor as PsycopgAnchor

        reader = _GlobalMeter.install()
        metric = "db.client.operation.duration"
        before_opt_in = set_semconv_opt_in("database")
        spans = CountingSpanExporter()
        tp = TracerProvider(sampler=ALWAYS_ON)
        tp.add_span_processor(BatchSpanProcessor(spans))
        anchor = PsycopgAnchor()
        anchor.instrument(tracer_provider=tp, skip_dep_check=True)
        before = histogram_count(reader, metric)
        return Active(name, [tp], spans, None, reader, [anchor], metric, before, (before_opt_in,))
    reader = InMemoryMetricReader()
    if name in TIERTRACE_CONFIGS:  # tiertrace's fast path, as for the readers it builds itself
        tiertrace.bridge_reader(reader)
    mp = MeterProvider(metric_readers=[reader])
    if name == "metrics":
        tp = TracerProvider(sampler=ALWAYS_OFF)
        tiertrace.init(exporter="none", tracer_provider=tp, meter_provider=mp)
        return Active(name, [tp, mp], reader=reader)
    spans = CountingSpanExporter()
    # ``unsampled``: the SDK's default sampler, every call under an unsampled parent
    tp = TracerProvider(sampler=DEFAULT_ON if name == "unsampled" else ALWAYS_ON)
    tp.add_span_processor(BatchSpanProcessor(spans))
    if name in ("full", "unsampled"):
        logs = CountingLogExporter()
        lp = LoggerProvider()
        lp.add_log_record_processor(BatchLogRecordProcessor(logs))
        tiertrace.init(exporter="none", tracer_provider=tp, meter_provider=mp, logger_provider=lp)
        active = Active(name, [tp, mp, lp], spans, logs, reader)
        if name == "unsampled":
            active.token = otel_context.attach(unsampled_parent())
        return active
    if name != "anchor":
        raise ValueError(f"unknown configuration {name!r}")
    from opentelemetry.instrumentation.chromadb import ChromaInstrumentor as ChromaAnchor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor as PsycopgAnchor
    from opentelemetry.instrumentation.redis import RedisInstrumentor as RedisAnchor

    anchors = [RedisAnchor(), PsycopgAnchor(), ChromaAnchor()]
    for anchor in anchors:
        anchor.instrument(tracer_provider=tp, meter_provider=mp, skip_dep_check=True)
    return Active(name, [tp, mp], spans, reader=reader, anchors=anchors)
