"""OTLP delivery that tells you once when nobody listens, and never holds your exit for it.

tiertrace wraps each OTLP exporter it creates (spans, metrics, log events) in a guard:

* before handing a batch to the exporter it checks that the collector's address accepts a TCP
  connection — at most once a second while exports succeed, before every export after a
  failure and at ``shutdown()``. Nothing listening (a refused connection is immediate on
  loopback) means the batch is not sent: the exporter's retry loop, which would sleep with
  backoff for up to its timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s) and log a
  ``Transient error …`` line per attempt, is never entered;
* a reachable collector gets every batch as before, however slowly it answers (the exporter's
  own timeout and retries apply; ``shutdown()`` waits up to twice the export timeout for it);
* every batch that is not delivered — not sent, or refused by the collector — counts one in
  ``tiertrace.self.errors`` with ``tiertrace.component="export"`` (``stats()["self_errors"]``
  in process);
* the first undelivered batch of an outage logs ONE warning on the ``tiertrace`` logger naming
  the endpoint and the settings that change it; when the collector answers again an INFO line
  says so, and a later outage warns once more.

The endpoint, headers, TLS and timeout come from the standard ``OTEL_EXPORTER_OTLP_*``
variables, as the exporter reads them (a signal's own ``…_TRACES_ENDPOINT`` /
``…_METRICS_ENDPOINT`` / ``…_LOGS_ENDPOINT`` first). Behind an HTTP(S) proxy
(``HTTPS_PROXY`` / ``HTTP_PROXY`` apply to the endpoint) the collector cannot be checked
directly, so every batch goes to the exporter unchanged.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_log = logging.getLogger("tiertrace")

COMPONENT = "export"  # the tiertrace.component of an undelivered batch
DEFAULT_ENDPOINT = "http://localhost:4318"
TRUST_S = 1.0  # after a delivered batch, the collector is not checked again for this long
CLOSING_PROBE_S = 1.0  # the longest check at shutdown()
SIGNALS = {"traces": "TRACES", "metrics": "METRICS", "logs": "LOGS"}


def endpoint(signal: str) -> tuple[str, str]:
    """The URL the OTLP/HTTP exporter of ``signal`` posts to, and the variable that set it."""
    own = f"OTEL_EXPORTER_OTLP_{SIGNALS[signal]}_ENDPOINT"
    if os.environ.get(own):
        return os.environ[own], own
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    return f"{base.removesuffix('/')}/v1/{signal}", "OTEL_EXPORTER_OTLP_ENDPOINT"


def timeout_s(signal: str) -> float:
    """The exporter's timeout in seconds (``OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT``, 10 s)."""
    raw = os.environ.get(f"OTEL_EXPORTER_OTLP_{SIGNALS[signal]}_TIMEOUT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TIMEOUT", "10"
    )
    try:
        return max(0.001, float(raw))
    except ValueError:
        return 10.0


class Delivery:
    """The guards of one ``init()``: one warning per outage for all signals, the closing flag.

    ``count`` is called with the component for each undelivered batch (tiertrace.self.errors).
    """

    def __init__(self, count: Callable[[str], None]) -> None:
        self.count = count
        self.lock = threading.Lock()
        self.closing = False
        self.warned = False

    def close(self) -> None:
        """From now on check the collector before every batch, for at most 1 s."""
        self.closing = True

    def undelivered(self, url: str, variable: str, why: str) -> None:
        self.count(COMPONENT)
        with self.lock:
            if self.warned:
                return
            self.warned = True
        _log.warning(
            "tiertrace: telemetry cannot be delivered to the OTLP collector at %s (%s); what "
            "cannot be delivered is dropped and counted in tiertrace.self.errors "
            '(component "export"). Start a collector there, set %s to yours, or choose '
            'another exporter: init(exporter="prometheus"|"console"|"none") or '
            "TIERTRACE_EXPORTER.",
            url,
            why,
            variable,
        )

    def delivered(self, url: str) -> None:
        with self.lock:
            if not self.warned:
                return
            self.warned = False
        _log.info("tiertrace: the OTLP collector at %s takes telemetry again", url)


class _Guard:
    """Reachability of one exporter's collector, and the bookkeeping around each batch."""

    def __init__(self, delivery: Delivery, signal: str) -> None:
        self.delivery = delivery
        self.url, self.variable = endpoint(signal)
        self.timeout_s = timeout_s(signal)
        parts = urllib.parse.urlsplit(self.url)
        self.address: tuple[str, int] | None = None
        try:
            host, port = parts.hostname, parts.port
        except ValueError:  # a bad port: the exporter reports it
            host, port = None, None
        if host and parts.scheme in ("http", "https") and not _proxied(parts.scheme, host):
            self.address = (host, port or (443 if parts.scheme == "https" else 80))
        self.trusted_until = 0.0

    def reachable(self) -> str | None:
        """None when the batch may go to the exporter, otherwise why not."""
        if self.address is None:
            return None
        closing = self.delivery.closing
        if not closing and time.monotonic() < self.trusted_until:
            return None
        wait = min(self.timeout_s, CLOSING_PROBE_S) if closing else self.timeout_s
        try:
            socket.create_connection(self.address, timeout=wait).close()
        except ConnectionRefusedError:
            return "connection refused"
        except TimeoutError:
            return f"no answer within {wait:g} s"
        except OSError as exc:
            return exc.strerror or type(exc).__name__
        return None

    def send(self, export: Callable[[], Any], ok: Any, failed: Any) -> Any:
        why = self.reachable()
        if why is not None:
            self.trusted_until = 0.0
            self.delivery.undelivered(self.url, self.variable, why)
            return failed
        try:
            result = export()
        except Exception as exc:
            result = failed
            why = type(exc).__name__
        if result == ok:
            self.trusted_until = time.monotonic() + TRUST_S
            self.delivery.delivered(self.url)
        else:
            self.trusted_until = 0.0
            self.delivery.undelivered(self.url, self.variable, why or "the export failed")
        return result


def _proxied(scheme: str, host: str) -> bool:
    """Whether ``requests`` would reach ``host`` through a proxy (then it cannot be checked)."""
    try:
        return scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)
    except Exception:
        return True


class GuardedSpanExporter(SpanExporter):
    """An OTLP span exporter behind a `Delivery` guard."""

    def __init__(self, exporter: SpanExporter, delivery: Delivery) -> None:
        self.exporter = exporter
        self.guard = _Guard(delivery, "traces")

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        result: SpanExportResult = self.guard.send(
            lambda: self.exporter.export(spans), SpanExportResult.SUCCESS, SpanExportResult.FAILURE
        )
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))


class GuardedMetricExporter(MetricExporter):
    """An OTLP metric exporter behind a `Delivery` guard (same temporality and aggregation)."""

    def __init__(self, exporter: MetricExporter, delivery: Delivery) -> None:
        super().__init__(
            preferred_temporality=getattr(exporter, "_preferred_temporality", None),
            preferred_aggregation=getattr(exporter, "_preferred_aggregation", None),
        )
        self.exporter = exporter
        self.guard = _Guard(delivery, "metrics")

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        result: MetricExportResult = self.guard.send(
            lambda: self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs),
            MetricExportResult.SUCCESS,
            MetricExportResult.FAILURE,
        )
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)


class GuardedLogExporter(LogRecordExporter):
    """An OTLP log record exporter behind a `Delivery` guard."""

    def __init__(self, exporter: LogRecordExporter, delivery: Delivery) -> None:
        self.exporter = exporter
        self.guard = _Guard(delivery, "logs")

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        result: LogRecordExportResult = self.guard.send(
            lambda: self.exporter.export(batch),
            LogRecordExportResult.SUCCESS,
            LogRecordExportResult.FAILURE,
        )
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))
