"""The SDK floor: what one OpenTelemetry call costs on this machine, measured in the same run.

* ``span``      — ``tracer.start_span(name).end()`` on an SDK ``TracerProvider`` (ALWAYS_ON) with
  a ``BatchSpanProcessor`` into a no-op exporter, as in the ``full`` configuration: a bare
  recorded span, no attributes;
* ``histogram`` — SDK ``Histogram.record(v, attributes)`` with the 5 attributes of an access
  (the same dict every call) on a ``MeterProvider`` read by an ``InMemoryMetricReader``;
* ``slot``      — one increment of a pre-resolved aggregation slot: a ``bisect`` into the 17
  bucket bounds of DESIGN §4 (``tiertrace._contract.names.BUCKETS``), then count, sum, min and
  max.

Each row is timed like an operation (calibrated batch, warm-up, collector off) in every
repetition, in rotated order. These are warm loops with nothing in between: between real
client calls, with colder caches, the same calls cost more.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from tiertrace._contract.names import BUCKETS

from .modes import CountingSpanExporter
from .timing import Timing, batch_size, median, rotated, timed_batch

ATTRIBUTES = {
    "tiertrace.tier": "redis",
    "tiertrace.tier.level": 1,
    "tiertrace.hit": True,
    "db.system.name": "redis",
    "db.operation.name": "GET",
}
VALUE_S = 0.0003
ROWS = ("span", "histogram", "slot")


class Slot:
    """One pre-resolved histogram slot: bucket counts, count, sum, min, max."""

    __slots__ = ("count", "counts", "max", "min", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def record(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value


class Floor:
    """The three floor calls, each a no-argument function, and the providers behind them."""

    def __init__(self) -> None:
        self.spans = CountingSpanExporter()
        self.tracer_provider = TracerProvider(sampler=ALWAYS_ON)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        tracer = self.tracer_provider.get_tracer("tiertrace.bench.floor")
        histogram = self.meter_provider.get_meter("tiertrace.bench.floor").create_histogram(
            "floor.duration", unit="s", explicit_bucket_boundaries_advisory=list(BUCKETS)
        )
        slot = Slot()
        start_span, record, attrs = tracer.start_span, histogram.record, dict(ATTRIBUTES)
        slot_record = slot.record
        self.calls: dict[str, Callable[[], Any]] = {
            "span": lambda: start_span("GET user:{id}:profile").end(),
            "histogram": lambda: record(VALUE_S, attrs),
            "slot": lambda: slot_record(VALUE_S),
        }

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def measure_floor(reps: int, target_s: float) -> dict[str, Any]:
    """``floor`` of the JSON: CPU µs per call (median over ``reps``) as ``<row>_us``, wall
    clock under ``wall_us``, every repetition under ``samples_cpu_us`` / ``samples_us``."""
    floor = Floor()
    try:
        sizes = {}
        for row in ROWS:
            us = min(timed_batch(floor.calls[row], 2000)[1] for _ in range(2))
            sizes[row] = batch_size(us, target_s, least=1000)
        samples: dict[str, list[Timing]] = {row: [] for row in ROWS}
        for rep in range(reps):
            for row in rotated(ROWS, rep):
                samples[row].append(timed_batch(floor.calls[row], sizes[row]))
    finally:
        floor.close()
    out: dict[str, Any] = {f"{row}_us": median([t[1] for t in samples[row]]) for row in ROWS}
    out["wall_us"] = {f"{row}_us": median([t[0] for t in samples[row]]) for row in ROWS}
    out["calls_per_batch"] = sizes
    out["samples_cpu_us"] = {row: [t[1] for t in samples[row]] for row in ROWS}
    out["samples_us"] = {row: [t[0] for t in samples[row]] for row in ROWS}
    return out
