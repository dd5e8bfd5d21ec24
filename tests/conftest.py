"""Shared fixtures: real services (a private redis-server, a fresh PostgreSQL database) and
in-memory OpenTelemetry readers to see exactly what tiertrace emits."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import redis
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tiertrace
from chroma_fixtures import chroma_server  # noqa: F401  (session fixture)
from prom_fixtures import live_prometheus  # noqa: F401  (live Prometheus + workload)

PG_ADMIN = os.environ.get("TIERTRACE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server on a free loopback port, stopped after the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="tiertrace-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()  # housekeeping: never an access
    yield client
    client.close()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A PostgreSQL database created for this test session and dropped after it."""
    name = f"tiertrace_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def table(pg_dsn: str) -> Iterator[str]:
    """A fresh ``memories(id int primary key, body text)`` table with rows 1..3."""
    with suppress_instrumentation(), psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS memories")
        conn.execute("CREATE TABLE memories (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO memories VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    yield "memories"


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


@pytest.fixture
def make_telemetry() -> Iterator[Any]:
    """``make_telemetry(**init_kwargs)`` initializes tiertrace against in-memory readers."""

    def make(**kwargs: Any) -> Telemetry:
        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        reader = tiertrace.bridge_reader(InMemoryMetricReader())
        logs = InMemoryLogRecordExporter()
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
        kwargs.setdefault("exporter", "none")
        t = Telemetry(spans, reader, logs)
        t.handle = tiertrace.init(
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[reader]),
            logger_provider=logger_provider,
            **kwargs,
        )
        return t

    yield make
    tiertrace.shutdown()


@pytest.fixture
def telemetry(make_telemetry: Any) -> Telemetry:
    """tiertrace initialized with defaults (implicit lookups on) and in-memory readers."""
    return make_telemetry()  # type: ignore[no-any-return]
