"""The test suite's layout and shared fixtures.

* ``tests/unit``: no service needed; every test is marked ``unit``.
* ``tests/integration``: real Redis, PostgreSQL, Chroma, Prometheus; marked ``integration``.
  Their fixtures (``redis_url``, ``pg_dsn``, ``chroma_server``, ``live_prometheus`` …) are in
  ``tests/integration/conftest.py``, so a unit test cannot ask for one.
* ``tests/support``: the helpers both use (one way to start a service, among others).

Here: the markers, the in-memory OpenTelemetry readers (``make_telemetry``, ``telemetry``) and
the one summary line naming every test skipped for a missing program and how to install it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tiertrace
from support.telemetry import Telemetry
from support.tools import NO_SKIP_ENV, skip_reason, summary_line

TESTS = Path(__file__).resolve().parent
KINDS = ("unit", "integration")  # one directory and one marker each


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test after its directory; a test module outside them is a layout error."""
    for item in items:
        try:
            kind = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue  # not under tests/ (a path given explicitly elsewhere)
        if kind not in KINDS:
            raise pytest.UsageError(
                f"{item.nodeid}: test modules live in tests/unit or tests/integration"
            )
        item.add_marker(getattr(pytest.mark, kind))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Iterator[None]:
    """After pytest's own last line: one line naming what was skipped and how to get it.

    With ``TIERTRACE_TEST_NO_SKIP=1`` a skipped test also fails the run.
    """
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get(NO_SKIP_ENV) == "1" and skipped and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    result = yield
    line = summary_line(skip_reason(r) for r in skipped)
    if line and reporter is not None:
        if session.exitstatus == pytest.ExitCode.TESTS_FAILED and not reporter.stats.get("failed"):
            line += f" ({NO_SKIP_ENV}=1: the run fails)"
        reporter.write_line(line, yellow=True, bold=True)
    return result


@pytest.fixture
def make_telemetry() -> Iterator[Any]:
    """``make_telemetry(**init_kwargs)`` initializes tiertrace against in-memory readers (on
    ``tracer_provider=`` when given, else a default `TracerProvider`)."""

    def make(tracer_provider: TracerProvider | None = None, **kwargs: Any) -> Telemetry:
        spans = InMemorySpanExporter()
        tracer_provider = tracer_provider or TracerProvider()
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
