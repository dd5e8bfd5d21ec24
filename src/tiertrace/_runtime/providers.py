"""Providers and instruments: where tiertrace's spans, metrics and events go.

`tiertrace.init()` never replaces a provider your application configured:

* ``tracer_provider`` / ``meter_provider`` / ``logger_provider`` passed to ``init()`` are used
  as they are (tiertrace adds no processor or reader to them);
* otherwise a configured global SDK provider is used as it is;
* otherwise tiertrace creates one for the chosen ``exporter`` and installs it as the global
  provider, so your other instrumentations share it. ``shutdown()`` shuts down only providers
  tiertrace created.

Exporters: ``otlp`` sends traces, metrics and the ``memory_tier_access`` log events over OTLP
(``pip install tiertrace[otlp]``; endpoint, headers and TLS from the standard
``OTEL_EXPORTER_OTLP_*`` variables); ``prometheus`` serves ``/metrics`` on
``prometheus_host:prometheus_port`` (127.0.0.1:9464 by default; ``pip install
tiertrace[prometheus]``), with exemplars on the histogram buckets when the scraper asks for
OpenMetrics (see `tiertrace._runtime.openmetrics`), and records no spans unless you configured a
tracer provider (without sampled spans there are no exemplars);
``console`` prints everything; ``none`` exports nothing (``tiertrace.stats()`` still works).

Instruments (names pinned by DESIGN §4): ``tiertrace.access.duration`` and
``tiertrace.lookup.duration`` (histograms in seconds with buckets from 50 µs to 10 s),
``tiertrace.cost.usd`` (observable counter fed by a local accumulator),
``tiertrace.self.errors`` and, with ``semconv_metrics=True``, ``db.client.operation.duration``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry._logs import get_logger_provider, set_logger_provider
from opentelemetry.metrics import CallbackOptions, Observation

from tiertrace._contract.names import (
    ACCESS_DURATION,
    BUCKETS,
    LOOKUP_DURATION,
    SCOPE,
    SELF_ERRORS,
    SEMCONV_BUCKETS,
    SEMCONV_DURATION,
    Instrument,
)
from tiertrace._core import recorder
from tiertrace._core.errors import ConfigError
from tiertrace._core.metrics import Metrics
from tiertrace._core.recorder import Access
from tiertrace._core.sdkspans import drops_every_span
from tiertrace._runtime import bridge, delivery
from tiertrace._runtime.bridge import Source
from tiertrace._runtime.config import Settings
from tiertrace._version import __version__


def _is_sdk(provider: object, installed: list[Any]) -> bool:
    """Whether ``provider`` is an SDK provider the application configured (not one of ours)."""
    return type(provider).__module__.startswith("opentelemetry.sdk") and not any(
        p is provider for p in installed
    )


class Telemetry:
    """The providers, tracer, meter, logger and instruments of one ``init()``."""

    def __init__(self, settings: Settings, installed: list[Any], source: Source) -> None:
        self.owned: list[Any] = []  # providers we created (shut down with us)
        self.installed = installed  # global providers tiertrace ever installed in this process
        self.source = source  # the live aggregation, for the readers tiertrace bridges
        self._http: Any = None
        self.delivery: Any = None  # the OTLP exporters' guard (`tiertrace._runtime.delivery`)
        try:
            self.tracer_provider = self._tracer_provider(settings)
            self.meter_provider = self._meter_provider(settings)
            self.logger_provider = self._logger_provider(settings)
        except ConfigError:
            raise
        except ValueError as exc:  # the SDK rejects a standard OTEL_* setting
            raise ConfigError(
                f"the OpenTelemetry SDK rejected its configuration ({exc}); check the OTEL_* "
                "environment variables (OTEL_BSP_*, OTEL_BLRP_*, OTEL_EXPORTER_OTLP_*, …)"
            ) from None
        tracer = self.tracer_provider.get_tracer(SCOPE, __version__)
        # a provider that can never sample: no span at all (the SDK would still make one)
        self.tracer = None if drops_every_span(tracer) else tracer
        meter = self.meter_provider.get_meter(SCOPE, __version__)
        self.meter = meter
        self.logger = self.logger_provider.get_logger(SCOPE, __version__)
        self.metrics = Metrics(settings.tiers, semconv=settings.semconv_metrics)
        # tiertrace's own aggregation reaches every reader of the provider through the bridge;
        # where a reader is not bridged, the same names go through SDK instruments (slower)
        if settings.bridge_readers:  # asked for: every reader of the provider in use
            for reader in getattr(self.meter_provider, "_metric_readers", ()):
                bridge.attach(reader, source)
        self.fallback = None if _bridged(self.meter_provider) else SdkInstruments(meter, settings)

    # -- providers -------------------------------------------------------------------------
    def _tracer_provider(self, s: Settings) -> Any:
        if s.tracer_provider is not None:
            return s.tracer_provider
        current = trace.get_tracer_provider()
        if _is_sdk(current, self.installed) or s.exporter in ("prometheus", "none"):
            return current
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(shutdown_on_exit=False)
        if s.exporter == "otlp":
            exporter: Any = self._guarded("traces", _otlp("trace_exporter", "OTLPSpanExporter")())
        else:
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return self._own(provider, trace.set_tracer_provider)

    def _meter_provider(self, s: Settings) -> Any:
        if s.meter_provider is not None:
            return s.meter_provider
        current = metrics.get_meter_provider()
        if _is_sdk(current, self.installed):
            return current
        if s.exporter == "none":  # not the global proxy: it would hand our instruments on
            return metrics.NoOpMeterProvider()
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader: Any
        if s.exporter == "otlp":
            otlp = _otlp("metric_exporter", "OTLPMetricExporter")()
            reader = PeriodicExportingMetricReader(self._guarded("metrics", otlp))
        elif s.exporter == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            reader = PeriodicExportingMetricReader(ConsoleMetricExporter())
        else:
            reader = self._prometheus(s)
        bridge.attach(reader, self.source)
        provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        return self._own(provider, metrics.set_meter_provider)

    def _logger_provider(self, s: Settings) -> Any:
        if s.logger_provider is not None:
            return s.logger_provider
        current = get_logger_provider()
        if _is_sdk(current, self.installed) or s.exporter in ("prometheus", "none"):
            return current
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        provider = LoggerProvider(shutdown_on_exit=False)
        if s.exporter == "otlp":
            exporter: Any = self._guarded("logs", _otlp("_log_exporter", "OTLPLogExporter")())
        else:
            from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

            exporter = ConsoleLogRecordExporter()
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        return self._own(provider, set_logger_provider)

    def _guarded(self, signal: str, exporter: Any) -> Any:
        """``exporter`` behind the one-warning, fail-fast guard of `tiertrace._runtime.delivery`."""
        if self.delivery is None:
            self.delivery = delivery.Delivery(recorder.count_fault)
        guard = {
            "traces": delivery.GuardedSpanExporter,
            "metrics": delivery.GuardedMetricExporter,
            "logs": delivery.GuardedLogExporter,
        }[signal]
        return guard(exporter, self.delivery)

    def _prometheus(self, s: Settings) -> Any:
        try:
            from prometheus_client import start_http_server

            from tiertrace._runtime import openmetrics
        except ImportError:
            raise ConfigError(
                "exporter='prometheus' needs opentelemetry-exporter-prometheus; "
                "pip install 'tiertrace[prometheus]'"
            ) from None
        try:
            self._http = start_http_server(s.prometheus_port, addr=s.prometheus_host)
        except OSError as exc:
            raise ConfigError(
                f"prometheus_port={s.prometheus_port} on {s.prometheus_host} cannot be served "
                f"({exc.strerror or exc}); choose a free port (TIERTRACE_PROMETHEUS_PORT)"
            ) from None
        return openmetrics.reader()  # exemplars in the OpenMetrics format

    def _own(self, provider: Any, set_global: Callable[[Any], None]) -> Any:
        self.owned.append(provider)
        self.installed.append(provider)
        set_global(provider)  # the API keeps the first global provider; later ones are ours only
        return provider

    # -- observable instruments ------------------------------------------------------------
    def observe(
        self,
        name: str,
        kind: str,
        unit: str,
        description: str,
        produce: Callable[[], Iterable[tuple[float, dict[str, Any]]]],
    ) -> None:
        """Register an observable counter or gauge whose points ``produce`` yields.

        A meter keeps the first instrument of a name, so after ``shutdown()`` and a new
        ``init()`` on the same provider the first callback stays: ``produce`` must therefore read
        the *current* state, never state captured at registration.
        """

        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, attrs) for value, attrs in produce()]

        if kind == "counter":
            self.meter.create_observable_counter(name, [callback], unit, description)
        else:
            self.meter.create_observable_gauge(name, [callback], unit, description)

    def flush(self, timeout_s: float) -> None:
        """Force-flush every provider, all together, waiting at most ``timeout_s``."""
        calls = [
            p.force_flush
            for p in (self.tracer_provider, self.logger_provider)
            if hasattr(p, "force_flush")
        ]
        _bounded([*calls, *_push_flushes(self.meter_provider)], timeout_s)

    def shutdown(self, timeout_s: float) -> None:
        """Shut down the providers tiertrace created and flush the others, within ``timeout_s``.

        A silent or dead collector would otherwise hold the caller for one export timeout per
        queued batch; what is not exported by the deadline is dropped.
        """
        if self.delivery is not None:
            self.delivery.close()  # an unreachable collector is not waited for at exit
        calls = []
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if any(provider is p for p in self.owned):
                calls.append(provider.shutdown)
            elif provider is self.meter_provider:
                calls.extend(_push_flushes(provider))
            elif hasattr(provider, "force_flush"):
                calls.append(provider.force_flush)
        _bounded(calls, timeout_s)
        if self._http is not None:
            server, thread = self._http
            with contextlib.suppress(Exception):
                server.shutdown()
                server.server_close()
                thread.join(timeout=2)
        self._http = None


def _push_flushes(provider: Any) -> list[Callable[[], Any]]:
    """The force-flush of each reader of ``provider`` that pushes (periodic, in-memory).

    A Prometheus reader is left to its scraper: a forced collection would be served twice, as
    two copies of every series in the next scrape.
    """
    readers = getattr(provider, "_metric_readers", None)
    if readers is None:
        return [provider.force_flush] if hasattr(provider, "force_flush") else []
    return [r.force_flush for r in readers if not _scraped(r)]


def _scraped(reader: Any) -> bool:
    """Whether ``reader`` is a ``PrometheusMetricReader`` (or one of its subclasses)."""
    return any(c.__name__ == "PrometheusMetricReader" for c in type(reader).__mro__)


def _bounded(calls: list[Callable[[], Any]], timeout_s: float) -> None:
    """Run ``calls`` in daemon threads and wait for them together until ``timeout_s``."""

    def quietly(call: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            with contextlib.suppress(Exception):
                call()

        return run

    threads = [threading.Thread(target=quietly(c), daemon=True) for c in calls]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))


def export_timeout_s() -> float:
    """Twice the OTLP export timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s by default)."""
    try:
        return 2 * float(os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT", "10"))
    except ValueError:
        return 20.0


def _otlp(module: str, name: str) -> Any:
    try:
        mod = __import__(f"opentelemetry.exporter.otlp.proto.http.{module}", fromlist=[name])
    except ImportError:
        raise ConfigError(
            "exporter='otlp' needs opentelemetry-exporter-otlp; pip install 'tiertrace[otlp]' "
            "or choose exporter='prometheus', 'console' or 'none'"
        ) from None
    return getattr(mod, name)


def _bridged(provider: Any) -> bool:
    """Whether tiertrace's aggregation reaches every reader of ``provider``.

    True for a provider that exports nothing (the API's no-op provider) and for an SDK provider
    whose readers are all bridged (tiertrace built them, or the application passed each through
    `tiertrace.bridge_reader`); False for an SDK provider with a reader tiertrace cannot reach.
    """
    if not type(provider).__module__.startswith("opentelemetry.sdk"):
        return True
    readers = getattr(provider, "_metric_readers", None)
    return readers is not None and all(bridge.attached(r) for r in readers)


class SdkInstruments:
    """The fallback: tiertrace's metrics as SDK instruments, for readers the bridge cannot reach.

    Same names, units, bounds and attributes as the bridged points, at the SDK's price per call
    (about 15 µs per histogram point with five attributes, against 0.3 µs for a slot).
    """

    def __init__(self, meter: Any, settings: Settings) -> None:
        def histogram(spec: Instrument, bounds: tuple[float, ...]) -> Any:
            return meter.create_histogram(
                spec.name,
                unit=spec.unit,
                description=spec.description,
                explicit_bucket_boundaries_advisory=bounds,
            )

        self.access_duration = histogram(ACCESS_DURATION, BUCKETS)
        self.lookup_duration = histogram(LOOKUP_DURATION, BUCKETS)
        self.semconv_duration = (
            histogram(SEMCONV_DURATION, SEMCONV_BUCKETS) if settings.semconv_metrics else None
        )
        self.self_errors = meter.create_counter(
            SELF_ERRORS.name, unit=SELF_ERRORS.unit, description=SELF_ERRORS.description
        )

    def access(self, acc: Access, seconds: float, attributes: dict[str, Any]) -> None:
        self.access_duration.record(seconds, attributes)
        if self.semconv_duration is not None:
            semconv = {k: attributes[k] for k in SEMCONV_DURATION.attributes if k in attributes}
            self.semconv_duration.record(seconds, semconv)

    def lookup(self, seconds: float, attributes: dict[str, Any]) -> None:
        self.lookup_duration.record(seconds, attributes)

    def fault(self, attributes: dict[str, Any]) -> None:
        self.self_errors.add(1, attributes)
