"""``init()``, ``shutdown()`` and ``reset()``: tiertrace on and off for the whole process.

::

    import tiertrace

    handle = tiertrace.init(exporter="prometheus")   # /metrics on 127.0.0.1:9464
    ...                                              # your Redis / PostgreSQL / Chroma code
    print(tiertrace.stats()["window"]["cache_effectiveness"])
    tiertrace.shutdown()                             # flushes, uninstruments, stops exporters

This module owns every piece of tiertrace's process state: the live `Handle`, the providers
tiertrace installed as globals, and the state of the layers below (the recorder's sink, the tiers
in force, the lookup closer, the instrumentors' patches and pending accesses), which it sets in
``init()`` and takes back in ``shutdown()`` and ``reset()``.

``init()`` resolves the settings (`tiertrace._runtime.config`), builds a `Handle` and instruments
every supported client library that is installed (``instrument=["redis", "psycopg"]`` narrows
that). Calling it again with no arguments or the same ones returns the same handle; calling it
with different settings raises `ConfigError` — call ``shutdown()`` first. It is the only place
tiertrace raises.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from tiertrace._contract.names import (
    ADVISOR_ACCESSES,
    ADVISOR_COST_SAVINGS,
    ADVISOR_LATENCY_SAVINGS,
    COST,
    PATTERN,
    TIER,
    TIER_LEVEL,
    TTL,
    WHATIF_COST,
    WHATIF_EFFECTIVENESS,
)
from tiertrace._core import recorder
from tiertrace._core.binding import TIERS
from tiertrace._core.errors import ConfigError
from tiertrace._core.metrics import Metrics
from tiertrace._core.tiers import DEFAULT_TIERS
from tiertrace._instrument import registry
from tiertrace._lookups import grouping
from tiertrace._memory.planner import set_figures
from tiertrace._runtime import bridge
from tiertrace._runtime.config import Settings, resolve
from tiertrace._runtime.handle import Handle
from tiertrace._runtime.providers import export_timeout_s


class _Process:
    """Everything tiertrace keeps per process, in one place."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.handle: Handle | None = None
        # global providers tiertrace installed: the API never lets a global be replaced, so
        # these stay known across shutdown() and reset() and are never mistaken for the app's
        self.installed: list[Any] = []
        self.exit_hook = False


_PROCESS = _Process()


def handle() -> Handle | None:
    """The live `Handle`, or None before ``init()`` and after ``shutdown()``.

    Returns:
        The handle ``init()`` returned, while tiertrace is on.
    """
    return _PROCESS.handle


def init(settings: dict[str, Any]) -> Handle:
    """Turn tiertrace on with ``settings`` (keyword arguments of `tiertrace.init`)."""
    with _PROCESS.lock:
        live = _PROCESS.handle
        if live is not None and live.auto:
            shutdown()  # the set-up opentelemetry-instrument made gives way to the application's
            live = None
        if live is not None:
            if not settings or resolve(settings) == live.settings:
                return live
            raise ConfigError(
                "tiertrace.init() was already called with other settings; "
                "call tiertrace.shutdown() before initializing again"
            )
        return _start(resolve(settings), auto=False)


def attach() -> None:
    """Start tiertrace for instrumentors loaded without ``init()`` (``opentelemetry-instrument``).

    Uses the providers already configured (the distro's) and exporter ``none`` unless
    ``TIERTRACE_EXPORTER`` is set; no instrumentor is started from here.
    """
    with _PROCESS.lock:
        if _PROCESS.handle is None:
            settings = resolve(
                {"instrument": [], "exporter": os.environ.get("TIERTRACE_EXPORTER", "none")}
            )
            _start(settings, auto=True)


def live_metrics() -> Metrics | None:
    """The live aggregation, for the bridged readers; closes lookups whose window has passed.

    None before ``init()`` and where the SDK-instrument fallback carries the metrics instead.
    """
    h = _PROCESS.handle
    if h is None or h.telemetry.fallback is not None:
        return None
    h.grouper.flush(everything=False)
    return h.telemetry.metrics


def bridge_reader(reader: Any) -> Any:
    """Merge tiertrace's aggregation into every collection of ``reader``; returns it."""
    return bridge.attach(reader, live_metrics)


def _start(settings: Settings, auto: bool) -> Handle:
    h = Handle(settings, _PROCESS.installed, live_metrics)
    h.auto = auto
    h.on_shutdown = shutdown
    _PROCESS.handle = h  # before the instrumentors start: they must find it
    try:
        _wire(h)
    except BaseException:
        _release()
        raise
    if not _PROCESS.exit_hook:
        atexit.register(shutdown)
        _PROCESS.exit_hook = True
    return h


def _wire(h: Handle) -> None:
    s = h.settings
    TIERS.set(s.tiers)
    state = recorder.configure(h.telemetry, h.grouper.on_access, h.grouper.drain)
    state.capture_keys = s.capture_keys
    state.capture_query_text = s.capture_query_text
    state.capture_error_messages = s.capture_error_messages
    grouping.CLOSE[:] = [h.emitter.close]
    tel = h.telemetry
    if tel.fallback is not None:  # bridged readers get the cost from the aggregation
        tel.observe(COST.name, COST.kind, COST.unit, COST.description, _costs)
    for gauge, field in _GAUGES:
        tel.observe(gauge.name, gauge.kind, gauge.unit, gauge.description, _candidates(field))
    for gauge, field in _WHATIF:
        tel.observe(gauge.name, gauge.kind, gauge.unit, gauge.description, _ttl_points(field))
    for client in s.instrument:
        cls = registry.load(client)
        if cls is None:  # the client library is not installed
            continue
        instrumentor = cls()
        instrumentor.instrument(skip_dep_check=True)
        h.instrumentors.append(instrumentor)
    set_figures(h)


_GAUGES = (
    (ADVISOR_ACCESSES, "accesses"),
    (ADVISOR_LATENCY_SAVINGS, "latency_savings_s_per_day"),
    (ADVISOR_COST_SAVINGS, "cost_savings_usd_per_day"),
)


def _costs() -> Iterable[tuple[float, dict[str, Any]]]:
    """Cost per tier of the live handle; first closes lookups whose window has passed.

    Observable callbacks run before the synchronous instruments are collected, so lookups
    closed here are part of this very collection.
    """
    h = _PROCESS.handle
    if h is None:
        return
    h.grouper.flush(everything=False)
    for tier, spent in h.telemetry.metrics.costs().values():
        yield spent, {TIER: tier.name, TIER_LEVEL: tier.level}


def _candidates(field: str) -> Callable[[], Iterable[tuple[float, dict[str, Any]]]]:
    def produce() -> Iterable[tuple[float, dict[str, Any]]]:
        h = _PROCESS.handle
        if h is None or h.advisor is None:
            return
        h.grouper.drain()
        for c in h.advisor.candidates():
            yield (
                float(getattr(c, field)),
                {PATTERN: c.pattern, TIER: c.tier},
            )

    return produce


_WHATIF = ((WHATIF_EFFECTIVENESS, "cache_effectiveness"), (WHATIF_COST, "cost_per_day_usd"))


def _ttl_points(field: str) -> Callable[[], Iterable[tuple[float, dict[str, Any]]]]:
    """One point per candidate TTL of the live handle's what-if (none before its window)."""

    def produce() -> Iterable[tuple[float, dict[str, Any]]]:
        h = _PROCESS.handle
        if h is None or h.whatif is None:
            return
        h.grouper.drain()
        for row in h.whatif.rows():
            yield float(row[field]), {TTL: f"{row['ttl_s']:g}"}

    return produce


def shutdown() -> None:
    """Close what is pending, uninstrument the clients, export once more and stop exporting.

    Pending lookups and accesses are closed, and a final collection exports everything while the
    aggregation is still live (the cost and the advisor's gauges included); only the providers
    tiertrace created are shut down (yours are left running). Bounded: exporters get twice the
    OTLP export timeout to deliver what is queued. A no-op before ``init()``; ``init()`` may be
    called again afterwards, with other settings.
    """
    with _PROCESS.lock:
        h = _PROCESS.handle
        if h is None:
            return
        try:
            h.close_pending()
            _uninstrument()
            h.telemetry.shutdown(export_timeout_s())
        finally:
            _release()


def reset() -> None:
    """Forget everything tiertrace set up, exporting nothing: for test suites.

    Uninstruments every client, drops pending lookups and accesses unexported, restores the
    default tiers and shuts down the providers tiertrace created without a final export.
    """
    with _PROCESS.lock:
        h = _PROCESS.handle
        _release()
        if h is not None:
            h.telemetry.shutdown(0.0)


def _uninstrument() -> None:
    """Uninstrument every loaded instrumentor, whoever started it (``init()``,
    ``opentelemetry-instrument`` or an ``instrument_client`` call)."""
    for cls in registry.loaded():
        try:
            cls().reset()
        except Exception as fault:
            recorder.report_fault("shutdown", fault)


def _release() -> None:
    """Take back every piece of state the layers below were given (no export)."""
    _PROCESS.handle = None
    _uninstrument()
    recorder.configure(None, None)
    grouping.CLOSE.clear()
    set_figures(None)
    TIERS.set(DEFAULT_TIERS)


registry.set_attach(attach)
