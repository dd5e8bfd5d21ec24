"""What tiertrace emitted, read through the OpenTelemetry SDK's in-memory exporter and readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class Telemetry:
    """What tiertrace emitted, read through the SDK's in-memory exporter and readers."""

    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    logs_exporter: InMemoryLogRecordExporter
    handle: Any = None
    _metrics: Any = field(default=None)

    def spans(self, name_prefix: str = "") -> list[ReadableSpan]:
        return [
            s for s in self.spans_exporter.get_finished_spans() if s.name.startswith(name_prefix)
        ]

    def access_spans(self) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans()
            if s.attributes
            and "tiertrace.tier" in s.attributes
            and "tiertrace.served_by" not in s.attributes
        ]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, Any], Any]] = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        found.extend((dict(p.attributes or {}), p) for p in m.data.data_points)
        return found

    def count(self, metric: str, **where: Any) -> int:
        """Histogram count of points whose attributes include ``where`` (dots as __)."""
        want = {k.replace("__", "."): v for k, v in where.items()}
        return sum(
            p.count
            for a, p in self.points(metric)
            if all(a.get(k, "<absent>") == v for k, v in want.items())
        )

    def access_count(self, **where: Any) -> int:
        return self.count("tiertrace.access.duration", **where)

    def logs(self) -> list[Any]:
        return list(self.logs_exporter.get_finished_logs())
