"""exporter="prometheus" serves exemplars in the OpenMetrics format and only there.

Asked for OpenMetrics (``Accept: application/openmetrics-text``, what Prometheus asks for), the
``/metrics`` of ``exporter="prometheus"`` puts on each access series the trace and span id of
its latest sampled access, on the bucket that contains that access's duration. The classic text
format is what OpenTelemetry's plain ``PrometheusMetricReader`` serves, byte for byte.
"""

from __future__ import annotations

import re
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import tiertrace
from support.services import free_port
from support.tools import need, requires
from tiertrace._contract.names import BUCKETS
from tiertrace._runtime.openmetrics import ExemplarReader

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
EXEMPLAR = re.compile(r" # \{[^}]*\} \S+ \S+$")  # " # {labels} value timestamp"


@dataclass
class Served:
    openmetrics: str
    text: str
    spans: list[ReadableSpan]


def _accesses(redis_url: str) -> None:
    """Three access series: a SET, a GET that hits and a GET that misses."""
    client = redis.Redis.from_url(redis_url)
    client.set("user:1:profile", "x")
    client.get("user:1:profile")
    client.get("user:2:profile")
    client.close()


def _get(url: str, accept: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return str(resp.read().decode())


@pytest.fixture
def served(redis_url: str) -> Iterator[Served]:
    port = free_port()
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tiertrace.init(
        exporter="prometheus", prometheus_port=port, instrument=["redis"], tracer_provider=provider
    )
    try:
        _accesses(redis_url)
        url = f"http://127.0.0.1:{port}/metrics"
        yield Served(_get(url, OPENMETRICS), _get(url), list(spans.get_finished_spans()))
    finally:
        tiertrace.shutdown()
        provider.shutdown()


def _exemplars(openmetrics: str) -> list[Any]:
    return [
        s
        for family in text_string_to_metric_families(openmetrics)
        for s in family.samples
        if s.exemplar is not None
    ]


def test_openmetrics_buckets_carry_the_trace_of_the_latest_sampled_access(served: Served) -> None:
    samples = _exemplars(served.openmetrics)  # the OpenMetrics parser accepts the exposition
    by_span = {f"{s.context.span_id:016x}": s for s in served.spans}
    found = [s for s in samples if s.name == "tiertrace_access_duration_seconds_bucket"]
    assert len(found) == 3  # one per access series, on one bucket each
    # the GET that hit was a lookup of its own: its lookup point names that access's span
    (lookup,) = [s for s in samples if s.name == "tiertrace_lookup_duration_seconds_bucket"]
    assert lookup.labels["tiertrace_served_by"] == "redis"
    hit = by_span[lookup.exemplar.labels["span_id"]]
    assert hit.attributes["db.operation.name"] == "GET" and hit.attributes["tiertrace.hit"]
    operations = []
    for sample in found:
        assert sample.name == "tiertrace_access_duration_seconds_bucket"
        ex = sample.exemplar
        assert sorted(ex.labels) == ["span_id", "trace_id"]
        span = by_span[ex.labels["span_id"]]  # the access's own span
        assert ex.labels["trace_id"] == f"{span.context.trace_id:032x}"
        assert sample.labels["db_operation_name"] == span.attributes["db.operation.name"]
        assert (
            sample.labels["tiertrace_hit"] == str(span.attributes.get("tiertrace.hit", "")).lower()
        )
        # the bucket that contains the value: the smallest bound at or above it
        assert float(sample.labels["le"]) == min(
            b for b in (*BUCKETS, float("inf")) if b >= ex.value
        )
        assert span.start_time is not None and span.end_time is not None
        at_ns = ex.timestamp.sec * 10**9 + ex.timestamp.nsec  # written in seconds, to the µs
        assert span.start_time - 1000 <= at_ns <= span.end_time + 1000
        operations.append((sample.labels["db_operation_name"], sample.labels["tiertrace_hit"]))
    assert sorted(operations) == [("GET", "false"), ("GET", "true"), ("SET", "")]


def test_text_exposition_has_no_exemplars(served: Served) -> None:
    assert "trace_id" not in served.text
    assert "trace_id" in served.openmetrics
    assert served.openmetrics.endswith("# EOF\n")


@requires("promtool")
def test_promtool_accepts_the_text_exposition_next_to_exemplars(served: Served) -> None:
    done = subprocess.run(
        [need("promtool"), "check", "metrics"],
        input=served.text,
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_expositions_are_the_plain_readers_apart_from_the_exemplars(redis_url: str) -> None:
    ours, plain = CollectorRegistry(), CollectorRegistry()
    readers = [ExemplarReader(ours), PrometheusMetricReader(registry=plain)]
    provider = TracerProvider()
    tiertrace.init(
        exporter="none",
        instrument=["redis"],
        tracer_provider=provider,
        meter_provider=MeterProvider([tiertrace.bridge_reader(r) for r in readers]),
    )
    try:
        _accesses(redis_url)
        text, plain_text = generate_latest(ours), generate_latest(plain)
        om, plain_om = (om_exposition.generate_latest(r).decode() for r in (ours, plain))
    finally:
        tiertrace.shutdown()
    assert text == plain_text
    assert "tiertrace_access_duration_seconds_bucket" in plain_om
    lines = om.splitlines()
    assert sum(1 for line in lines if EXEMPLAR.search(line)) == 4  # 3 accesses, 1 L1-hit lookup
    assert [EXEMPLAR.sub("", line) for line in lines] == plain_om.splitlines()
