"""The ``/metrics`` of ``exporter="prometheus"``, with exemplars when the scraper asks for them.

OpenTelemetry's ``PrometheusMetricReader`` turns each collection into prometheus_client
families, but leaves out the exemplars of histogram points. tiertrace's histogram points carry
one (the latest sampled access of the point, see `tiertrace._runtime.bridge`), so `reader`
returns a ``PrometheusMetricReader`` whose families, served from prometheus_client's global
registry (what ``start_http_server`` serves), get them back:

* on the histograms of the contract (``tiertrace_access_duration_seconds``,
  ``tiertrace_lookup_duration_seconds`` and ``db_client_operation_duration_seconds``; other
  histograms are served as the reader makes them);
* each exemplar on the ``_bucket`` sample of its own point (same labels) whose ``le`` bound
  contains its value (the smallest ``le`` ≥ the value), with the labels ``trace_id`` (32
  lowercase hex digits) and ``span_id`` (16), its value in seconds and its timestamp;
* shown only by the OpenMetrics format (``Accept: application/openmetrics-text``, what
  Prometheus asks for by default; it keeps them with ``--enable-feature=exemplar-storage``).
  The classic text format has no exemplars: that exposition is byte for byte what the plain
  reader serves — names, labels, ``HELP`` and ``TYPE`` unchanged.

How: the reader registers its own collector in a private registry; a second collector in the
global registry collects that one, then copies each exemplar of the collection's data points
onto its bucket sample. Both steps run under one lock, so two concurrent scrapes each annotate
their own collection.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import Histogram, MetricsData
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.samples import Exemplar

from tiertrace._contract.names import ACCESS_DURATION, LOOKUP_DURATION, SCOPE, SEMCONV_DURATION

_SPECS = (ACCESS_DURATION, LOOKUP_DURATION, SEMCONV_DURATION)
HISTOGRAMS = {spec.name: spec.prometheus for spec in _SPECS}
"""OpenTelemetry name → Prometheus family name of the histograms that get exemplars."""

_LABEL = re.compile(r"[^a-zA-Z0-9]+")
# the attribute labels of a histogram's points, and for each point (its values of them, as the
# reader writes them): {upper bound of a bucket: exemplar}
_Index = tuple[list[str], dict[tuple[str, ...], dict[float, Exemplar]]]


def reader(registry: CollectorRegistry = REGISTRY) -> PrometheusMetricReader:
    """A ``PrometheusMetricReader`` whose families, served from ``registry``, carry exemplars."""
    return ExemplarReader(registry)


class ExemplarReader(PrometheusMetricReader):
    """``PrometheusMetricReader`` plus exemplars on the buckets of tiertrace's histograms."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._inner = CollectorRegistry()  # the reader's own collector lives here
        super().__init__(registry=self._inner)
        self._latest: MetricsData | None = None
        self._lock = threading.Lock()
        self._served = _Collector(self)
        self._outer = registry
        registry.register(self._served)

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._latest = metrics_data
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def families(self) -> list[Family]:
        """One collection as prometheus_client families, exemplars included."""
        with self._lock:
            self._latest = None
            found = list(self._inner.collect())
            data, self._latest = self._latest, None
        if data is not None:
            annotate(found, data)
        return found

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        super().shutdown(timeout_millis, **kwargs)
        with contextlib.suppress(KeyError):
            self._outer.unregister(self._served)


class _Collector:
    """The prometheus_client collector of an `ExemplarReader` (what the registry serves)."""

    def __init__(self, owner: ExemplarReader) -> None:
        self._owner = owner

    def describe(self) -> list[Family]:
        return []  # no collection at registration (the reader has no provider yet)

    def collect(self) -> Iterable[Family]:
        return self._owner.families()


def annotate(families: Sequence[Family], data: MetricsData) -> None:
    """Put the exemplars of ``data``'s tiertrace histogram points on ``families``' buckets."""
    indexes = _exemplars(data)
    for family in families:
        if family.type != "histogram" or family.name not in indexes:
            continue
        keys, index = indexes[family.name]
        samples = []
        for s in family.samples:
            if s.name.endswith("_bucket") and s.labels.get("otel_scope_name", SCOPE) == SCOPE:
                found = index.get(tuple(s.labels.get(k, "") for k in keys), {})
                exemplar = found.get(float(s.labels.get("le", "nan")))
                if exemplar is not None:
                    s = s._replace(exemplar=exemplar)
            samples.append(s)
        family.samples = samples


def _exemplars(data: MetricsData) -> dict[str, _Index]:
    """{Prometheus family name: exemplars of its points} for tiertrace's histograms."""
    indexes: dict[str, _Index] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            if sm.scope.name != SCOPE:
                continue
            for metric in sm.metrics:
                name = HISTOGRAMS.get(metric.name)
                if name is None or not isinstance(metric.data, Histogram):
                    continue
                points = metric.data.data_points
                keys = sorted({_label(k) for p in points for k in (p.attributes or {})})
                index: dict[tuple[str, ...], dict[float, Exemplar]] = {}
                indexes[name] = (keys, index)
                for p in points:
                    labels = {_label(k): _value(v) for k, v in (p.attributes or {}).items()}
                    key = tuple(labels.get(k, "") for k in keys)
                    bounds = list(p.explicit_bounds)
                    for ex in p.exemplars:
                        if not ex.trace_id or not ex.span_id:
                            continue
                        i = bisect_left(bounds, ex.value)
                        upper = bounds[i] if i < len(bounds) else float("inf")
                        index.setdefault(key, {})[upper] = Exemplar(
                            {"trace_id": f"{ex.trace_id:032x}", "span_id": f"{ex.span_id:016x}"},
                            ex.value,
                            ex.time_unix_nano / 1e9,
                        )
    return indexes


def _label(key: str) -> str:
    """A point attribute's label name, as the reader writes it (OTel's Prometheus mapping)."""
    key = "_" + key[1:] if key[:1].isdigit() else key
    return _LABEL.sub("_", key)


def _value(value: Any) -> str:
    """A point attribute's label value, as the reader writes it (JSON for non-strings)."""
    return value if isinstance(value, str) else json.dumps(value, default=str)
