"""tiertrace aggregates, the SDK exports: the same exact figures through every kind of reader.

A scripted workload with a known ground truth runs on real Redis and PostgreSQL; then every
reader kind collects at once — in-memory (cumulative and delta), Prometheus text (checked by
``promtool check metrics``), OTLP/HTTP to a live loopback receiver that decodes the protobuf, and
the console exporter — and each must report exactly the ground truth and what ``stats()`` says.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

import tiertrace
from support.otlp import OtlpReceiver

ACCESS = "tiertrace.access.duration"
LOOKUP = "tiertrace.lookup.duration"
COST = "tiertrace.cost.usd"
DELTA = {Histogram: AggregationTemporality.DELTA, Counter: AggregationTemporality.DELTA}
# (tier, operation, hit) -> accesses the workload makes
TRUTH = {
    ("redis", "SET", None): 1,
    ("redis", "GET", True): 5,
    ("redis", "GET", False): 3,
    ("postgresql", "SELECT", True): 4,
    ("postgresql", "SELECT", False): 2,
}
PRICES = {"redis": 0.0001, "postgresql": 0.001}


def workload(r: redis.Redis, conn: psycopg.Connection[Any]) -> None:
    r.set("memory:1", "one")
    for _ in range(5):
        r.get("memory:1")
    for _ in range(3):
        r.get("memory:none")
    for _ in range(4):
        conn.execute("SELECT body FROM memories WHERE id = %s", (1,)).fetchone()
    for _ in range(2):
        conn.execute("SELECT body FROM memories WHERE id = %s", (99,)).fetchone()


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[ExportMetricsServiceRequest]]]:
    with OtlpReceiver() as receiver:
        yield f"{receiver.url}/v1/metrics", receiver.requests["metrics"]


def _in_memory_counts(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    out: dict[str, Any] = {"access": {}, "lookups": 0, "cost": {}, "buckets": {}}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    a = dict(p.attributes or {})
                    if m.name == ACCESS:
                        key = (a["tiertrace.tier"], a["db.operation.name"], a.get("tiertrace.hit"))
                        out["access"][key] = p.count
                        out["buckets"][key] = list(p.bucket_counts)
                        assert sum(p.bucket_counts) == p.count
                    elif m.name == LOOKUP:
                        out["lookups"] += p.count
                    elif m.name == COST:
                        out["cost"][a["tiertrace.tier"]] = p.value
    return out


def _expected_cost() -> dict[str, float]:
    spent = {"redis": 0.0, "postgresql": 0.0, "chroma": 0.0}
    for (tier, _op, _hit), n in TRUTH.items():
        spent[tier] += n * PRICES[tier]
    return spent


@pytest.fixture
def readers(
    otlp_receiver: tuple[str, list[ExportMetricsServiceRequest]],
) -> Iterator[dict[str, Any]]:
    """One MeterProvider over one reader of every kind, each passed through bridge_reader."""
    url, received = otlp_receiver
    console = io.StringIO()
    registry = CollectorRegistry()
    kinds: dict[str, Any] = {
        "memory": InMemoryMetricReader(),
        "memory_delta": InMemoryMetricReader(preferred_temporality=DELTA),
        "prometheus": PrometheusMetricReader(registry=registry),
        "otlp": PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=url), export_interval_millis=3_600_000
        ),
        "console": PeriodicExportingMetricReader(
            ConsoleMetricExporter(out=console), export_interval_millis=3_600_000
        ),
    }
    for reader in kinds.values():
        assert tiertrace.bridge_reader(reader) is reader
    provider = MeterProvider(metric_readers=list(kinds.values()))
    yield {**kinds, "provider": provider, "registry": registry, "received": received,
           "console_out": console}  # fmt: skip
    tiertrace.shutdown()
    provider.shutdown()


def test_every_reader_kind_exports_exactly_the_ground_truth_and_stats(
    readers: dict[str, Any], r: redis.Redis, pg_dsn: str, table: str
) -> None:
    tiertrace.init(
        exporter="none", meter_provider=readers["provider"], instrument=["redis", "psycopg"]
    )
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        workload(r, conn)
    tiertrace.flush()  # closes pending lookups; the periodic readers export once
    snap = tiertrace.stats()["total"]

    memory = _in_memory_counts(readers["memory"])
    assert memory["access"] == TRUTH
    assert memory["cost"] == pytest.approx(_expected_cost())
    assert memory["lookups"] == snap["lookups"] > 0
    for tier in ("redis", "postgresql"):
        n = sum(count for (t, _o, _h), count in TRUTH.items() if t == tier)
        assert snap["tiers"][tier]["accesses"] == n
        assert snap["tiers"][tier]["cost_usd"] == pytest.approx(_expected_cost()[tier])

    assert _in_memory_counts(readers["memory_delta"])["access"] == TRUTH  # first delta: all

    text = generate_latest(readers["registry"]).decode()
    _promtool_check(text)
    prom = _prometheus_counts(text)
    assert prom["access"] == TRUTH
    assert prom["buckets"] == memory["buckets"]
    assert prom["cost"] == pytest.approx(_expected_cost())
    assert prom["lookups"] == snap["lookups"]

    otlp = _otlp_counts(readers["received"])
    assert otlp["access"] == TRUTH
    assert otlp["buckets"] == memory["buckets"]
    assert otlp["cost"] == pytest.approx(_expected_cost())
    assert otlp["lookups"] == snap["lookups"]

    console = _console_counts(readers["console_out"].getvalue())
    assert console["access"] == TRUTH
    assert console["buckets"] == memory["buckets"]
    assert console["cost"] == pytest.approx(_expected_cost())


def test_delta_points_hold_what_happened_since_the_previous_collection(
    readers: dict[str, Any], r: redis.Redis, pg_dsn: str, table: str
) -> None:
    handle = tiertrace.init(
        exporter="none", meter_provider=readers["provider"], instrument=["redis", "psycopg"]
    )
    reader = readers["memory_delta"]
    cumulative = readers["memory"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        workload(r, conn)
        first = reader.get_metrics_data()
        workload(r, conn)
        workload(r, conn)
    second = _points(reader.get_metrics_data(), ACCESS)
    assert {k: p.count for k, p in second.items()} == {k: 2 * n for k, n in TRUTH.items()}
    first_points = _points(first, ACCESS)
    for key, point in second.items():  # each delta starts where the previous one ended
        assert point.start_time_unix_nano == first_points[key].time_unix_nano
    total = _points(cumulative.get_metrics_data(), ACCESS)
    assert {k: p.count for k, p in total.items()} == {k: 3 * n for k, n in TRUTH.items()}
    start = {p.start_time_unix_nano for p in total.values()}
    assert start == {handle.telemetry.metrics.start_ns}  # cumulative points start at init()
    assert all(p.sum == pytest.approx(first_points[k].sum * 0 + p.sum) for k, p in total.items())


def test_access_points_carry_the_trace_of_a_sampled_access_as_exemplar(
    readers: dict[str, Any], r: redis.Redis
) -> None:
    spans = _init_traced(readers, ["redis"])
    r.set("memory:1", "one")
    r.get("memory:1")
    points = _points(readers["memory"].get_metrics_data(), ACCESS)
    traced = {(s.context.trace_id, s.context.span_id): s.name for s in spans.get_finished_spans()}
    for key in (("redis", "SET", None), ("redis", "GET", True)):
        (exemplar,) = points[key].exemplars
        assert traced[(exemplar.trace_id, exemplar.span_id)].startswith(key[1])
        assert exemplar.value == pytest.approx(points[key].sum)


def test_lookup_points_of_one_read_carry_that_reads_span_as_exemplar(
    readers: dict[str, Any], r: redis.Redis, pg_dsn: str, table: str
) -> None:
    spans = _init_traced(readers, ["redis", "psycopg"])
    r.set("memory:1", "one")
    r.get("memory:1")  # an L1 hit: a lookup of its own, served by redis
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SELECT body FROM memories WHERE id = %s", (1,)).fetchone()  # lone read
    r.get("memory:2")  # a miss nothing joins: a lookup of its own, served by none
    tiertrace.flush()
    traced = {(s.context.trace_id, s.context.span_id): s for s in spans.get_finished_spans()}
    data = readers["memory"].get_metrics_data()
    lookups = {
        p.attributes["tiertrace.served_by"]: p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == LOOKUP
        for p in m.data.data_points
    }
    assert {k: p.count for k, p in lookups.items()} == {"redis": 1, "postgresql": 1, "none": 1}
    served_span = {"redis": "GET", "postgresql": "SELECT", "none": "GET"}
    for served_by, point in lookups.items():
        (exemplar,) = point.exemplars
        span = traced[(exemplar.trace_id, exemplar.span_id)]
        assert span.name.startswith(served_span[served_by]), (served_by, span.name)
        assert exemplar.value == pytest.approx(point.sum)


def test_a_reader_that_is_not_bridged_gets_the_same_names_through_sdk_instruments(
    r: redis.Redis, pg_dsn: str, table: str
) -> None:
    reader = InMemoryMetricReader()  # not passed through bridge_reader
    provider = MeterProvider(metric_readers=[reader])
    tiertrace.init(exporter="none", meter_provider=provider, instrument=["redis", "psycopg"])
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            workload(r, conn)
        tiertrace.flush()
        counts = _in_memory_counts(reader)
        assert counts["access"] == TRUTH
        assert counts["cost"] == pytest.approx(_expected_cost())
        assert counts["lookups"] == tiertrace.stats()["total"]["lookups"]
    finally:
        tiertrace.shutdown()
        provider.shutdown()


def _run_job(script: str, redis_url: str, env: dict[str, str] | None = None) -> str:
    """The standard output of a short Python job, ``script`` with ``{url}`` = ``redis_url``."""
    done = subprocess.run(
        [sys.executable, "-c", script.format(url=redis_url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    return done.stdout


FINAL_EXPORT = """
import redis, tiertrace
tiertrace.init(exporter="console", instrument=["redis"])
r = redis.Redis.from_url({url!r})
r.set("memory:1", "one")
r.get("memory:1")
tiertrace.shutdown()
"""


def test_shutdown_exports_the_cost_of_a_short_job(redis_url: str) -> None:
    exported = _console_counts(_run_job(FINAL_EXPORT, redis_url))
    assert exported["access"] == {("redis", "SET", None): 1, ("redis", "GET", True): 1}
    assert exported["cost"]["redis"] == pytest.approx(2 * PRICES["redis"])
    assert exported["lookups"] == 1  # the GET hit; a write alone is no lookup


PERIODIC_RUN = """
import json, time, redis, tiertrace
tiertrace.init(exporter="console", instrument=["redis"])
r = redis.Redis.from_url({url!r})
r.set("memory:1", "one")
gets, end = 0, time.monotonic() + 2.5
while time.monotonic() < end:
    r.get("memory:1")
    gets += 1
    time.sleep(0.02)
print(json.dumps({{"gets": gets}}), flush=True)
tiertrace.shutdown()
"""


def test_every_periodic_export_and_the_final_one_carry_the_cost_with_the_accesses(
    redis_url: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TIERTRACE_"))}
    env["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
    stdout = _run_job(PERIODIC_RUN, redis_url, env=env)
    gets = next(json.loads(x)["gets"] for x in stdout.splitlines() if x.startswith('{"gets"'))
    exports = [_metric_names(e) for e in _console_exports(stdout)]
    with_access = [names for names in exports if ACCESS in names]
    with_cost = [names for names in exports if COST in names]
    assert len(with_access) >= 2  # at least one periodic export, and the final one
    assert len(with_access) == len(with_cost) == len(exports)
    final = _console_counts(stdout)  # the last export: at shutdown, complete
    assert final["access"] == {("redis", "SET", None): 1, ("redis", "GET", True): gets}
    assert final["cost"]["redis"] == pytest.approx((gets + 1) * PRICES["redis"])
    assert final["lookups"] == gets


FLUSH_RUN = """
import redis, tiertrace
tiertrace.init(exporter="console", instrument=["redis"])
r = redis.Redis.from_url({url!r})
r.set("memory:1", "one")
r.get("memory:1")
r.get("memory:2")
print("== flush ==", flush=True)
tiertrace.flush()
print("== shutdown ==", flush=True)
tiertrace.shutdown()
"""


def test_flush_and_shutdown_each_export_every_instrument_exactly_once(redis_url: str) -> None:
    before, rest = _run_job(FLUSH_RUN, redis_url).split("== flush ==\n")
    flushed, at_shutdown = rest.split("== shutdown ==\n")
    assert _console_exports(before) == []  # the 60 s interval has not passed
    (by_flush,) = _console_exports(flushed)
    (by_shutdown,) = _console_exports(at_shutdown)
    every = [ACCESS, COST, LOOKUP]
    assert sorted(_metric_names(by_flush)) == every
    assert sorted(_metric_names(by_shutdown)) == every
    assert _console_counts(flushed)["access"] == {
        ("redis", "SET", None): 1,
        ("redis", "GET", True): 1,
        ("redis", "GET", False): 1,
    }
    assert _console_counts(at_shutdown)["access"] == _console_counts(flushed)["access"]


# -- reading each format ----------------------------------------------------------------------
def _init_traced(readers: dict[str, Any], instrument: list[str]) -> InMemorySpanExporter:
    """``tiertrace.init`` with the test's meter provider and a tracer provider recording every
    span; returns the exporter that holds the finished spans."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    tiertrace.init(
        exporter="none",
        meter_provider=readers["provider"],
        tracer_provider=tracer_provider,
        instrument=instrument,
    )
    return spans


def _points(data: Any, metric: str) -> dict[tuple[Any, ...], Any]:
    found = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == metric:
                    for p in m.data.data_points:
                        a = dict(p.attributes or {})
                        found[
                            (a["tiertrace.tier"], a["db.operation.name"], a.get("tiertrace.hit"))
                        ] = p
    return found


def _promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _labels(part: str) -> dict[str, str]:
    out = {}
    for item in part.strip("{}").split(","):
        if item:
            k, _, v = item.partition("=")
            out[k] = v.strip('"')
    return out


def _prometheus_counts(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"access": {}, "lookups": 0, "cost": {}, "buckets": {}}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, value = line.rsplit(" ", 1)
        name, _, rest = series.partition("{")
        labels = _labels("{" + rest)
        hit = {"true": True, "false": False}.get(labels.get("tiertrace_hit", ""))
        key = (labels.get("tiertrace_tier"), labels.get("db_operation_name"), hit)
        if name == "tiertrace_access_duration_seconds_count":
            out["access"][key] = int(float(value))
        elif (
            name == "tiertrace_access_duration_seconds_bucket" and labels["le"] != "+Inf"
        ) or name == "tiertrace_access_duration_seconds_bucket":
            out["buckets"].setdefault(key, []).append(int(float(value)))
        elif name == "tiertrace_lookup_duration_seconds_count":
            out["lookups"] += int(float(value))
        elif name == "tiertrace_cost_usd_total":
            out["cost"][labels["tiertrace_tier"]] = float(value)
    # Prometheus buckets are cumulative: back to per-bucket counts
    out["buckets"] = {
        k: [b - a for a, b in zip([0, *v[:-1]], v, strict=True)] for k, v in out["buckets"].items()
    }
    return out


def _otlp_counts(requests: list[ExportMetricsServiceRequest]) -> dict[str, Any]:
    out: dict[str, Any] = {"access": {}, "lookups": 0, "cost": {}, "buckets": {}}
    (request,) = requests
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name in (ACCESS, LOOKUP):
                    for p in m.histogram.data_points:
                        a = {kv.key: _any(kv.value) for kv in p.attributes}
                        if m.name == LOOKUP:
                            out["lookups"] += p.count
                            continue
                        key = (a["tiertrace.tier"], a["db.operation.name"], a.get("tiertrace.hit"))
                        out["access"][key] = p.count
                        out["buckets"][key] = list(p.bucket_counts)
                elif m.name == COST:
                    for p in m.sum.data_points:
                        a = {kv.key: _any(kv.value) for kv in p.attributes}
                        out["cost"][a["tiertrace.tier"]] = p.as_double
    return out


def _any(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value"))


def _console_exports(text: str) -> list[dict[str, Any]]:
    """Each metrics export the console exporter printed, in order (spans and logs skipped)."""
    found: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    i = 0
    while i < len(text):
        j = text.find("{", i)
        if j < 0:
            break
        try:
            doc, i = decoder.raw_decode(text, j)
        except json.JSONDecodeError:
            i = j + 1
            continue
        if isinstance(doc, dict) and "resource_metrics" in doc:
            found.append(doc)
    return found


def _metric_names(export: dict[str, Any]) -> list[str]:
    """The metric names of one console export, one entry per metric (duplicates kept)."""
    return [
        m["name"] for rm in export["resource_metrics"] for sm in rm["scope_metrics"]
        for m in sm["metrics"]
    ]  # fmt: skip


def _console_counts(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"access": {}, "lookups": 0, "cost": {}, "buckets": {}}
    exports = _console_exports(text)
    last = exports[-1] if exports else None
    for rm in last["resource_metrics"] if last else []:
        for sm in rm["scope_metrics"]:
            for m in sm["metrics"]:
                for p in m["data"]["data_points"]:
                    a = p["attributes"]
                    if m["name"] == ACCESS:
                        key = (a["tiertrace.tier"], a["db.operation.name"], a.get("tiertrace.hit"))
                        out["access"][key] = p["count"]
                        out["buckets"][key] = p["bucket_counts"]
                    elif m["name"] == LOOKUP:
                        out["lookups"] += p["count"]
                    elif m["name"] == COST:
                        out["cost"][a["tiertrace.tier"]] = p["value"]
    return out


def test_bridge_readers_gives_the_readers_of_the_provider_in_use_the_fast_path(
    r: redis.Redis, pg_dsn: str, table: str
) -> None:
    reader = InMemoryMetricReader()  # the application's, never passed through bridge_reader
    provider = MeterProvider(metric_readers=[reader])
    handle = tiertrace.init(
        exporter="none", meter_provider=provider, instrument=["redis", "psycopg"],
        bridge_readers=True,
    )  # fmt: skip
    try:
        assert handle.telemetry.fallback is None  # no SDK instrument call per access
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            workload(r, conn)
        tiertrace.flush()
        counts = _in_memory_counts(reader)
        assert counts["access"] == TRUTH
        assert counts["cost"] == pytest.approx(_expected_cost())
    finally:
        tiertrace.shutdown()
        provider.shutdown()
