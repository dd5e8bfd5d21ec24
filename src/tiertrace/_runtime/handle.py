"""``init()`` and ``shutdown()``: turning tiertrace on and off for the whole process.

::

    import tiertrace

    handle = tiertrace.init(exporter="prometheus")   # /metrics on 127.0.0.1:9464
    ...                                              # your Redis / PostgreSQL / Chroma code
    print(tiertrace.stats()["window"]["cache_effectiveness"])
    tiertrace.shutdown()                             # flushes, uninstruments, stops exporters

``init()`` resolves the settings (see `tiertrace._runtime.config`), sets up providers and instruments
(see `tiertrace._runtime.providers`) and instruments every supported client library that is installed
(``instrument=["redis", "psycopg"]`` narrows that). Calling it again with no arguments or the same
ones returns the same handle; calling it with different settings raises `ConfigError` — call
``shutdown()`` first. It is the only place tiertrace raises.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from tiertrace._core import recorder as _access
from tiertrace._core.binding import TIERS
from tiertrace._core.errors import ConfigError
from tiertrace._lookups import grouping as _lookup
from tiertrace._lookups.events import Emitter
from tiertrace._lookups.grouping import Grouper
from tiertrace._memory.planner import set_figures
from tiertrace._runtime.config import Settings, resolve
from tiertrace._runtime.providers import Telemetry, export_timeout_s
from tiertrace._runtime.stats import Stats

_LOCK = threading.RLock()
_INSTRUMENTORS = {
    "redis": ("redis", "tiertrace._instrument.redis.instrumentor", "RedisInstrumentor"),
    "psycopg": ("psycopg", "tiertrace._instrument.psycopg.instrumentor", "PsycopgInstrumentor"),
    "chroma": ("chromadb", "tiertrace._instrument.chroma.instrumentor", "ChromaInstrumentor"),
}


class Handle:
    """What ``init()`` returns: the live configuration and its parts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.telemetry = Telemetry(settings)
        self.stats = Stats(settings)
        self.advisor = _make_advisor(settings)
        self.emitter = Emitter(
            self.telemetry, self.stats, self.advisor, settings.single_access_events
        )
        self.grouper = Grouper(
            self.emitter.close,
            settings.implicit_lookups,
            settings.implicit_window_s,
            self._observe,
        )
        self.instrumentors: list[Any] = []
        self.auto = False  # started by an instrumentor without init()
        self._suggested: tuple[float, list[Any]] = (-1.0, [])

    def suggestions(self, max_age_s: float = 0.0) -> list[Any]:
        """The advisor's findings; ``max_age_s`` allows a cached answer (they cost ~1 ms)."""
        if self.advisor is None:
            return []
        now = time.monotonic()
        at, found = self._suggested
        if now - at > max_age_s:
            found = list(self.advisor.suggestions())
            self._suggested = (now, found)
        return found

    def _observe(self, acc: _access.Access) -> None:
        self.stats.observe_access(acc)
        if self.advisor is not None:
            self.advisor.observe_access(
                acc.tier.name,
                acc.level,
                acc.pattern,
                acc.key,
                acc.duration_s,
                acc.cost,
                acc.hit,
                not acc.read,
            )

    def close_pending(self) -> None:
        """Close every pending lookup and psycopg access with what is known now."""
        from tiertrace._instrument.psycopg.instrumentor import flush_all

        flush_all()
        self.grouper.flush(everything=True)

    def flush(self) -> None:
        """Close every pending lookup and access, and flush the exporters' queues."""
        self.close_pending()
        self.telemetry.flush(export_timeout_s())

    def shutdown(self) -> None:
        """Same as `tiertrace.shutdown()`."""
        shutdown()


_HANDLE: Handle | None = None
_ATEXIT: list[Any] = []  # shutdown() runs at exit (bounded), once registered


def _make_advisor(settings: Settings) -> Any:
    if not settings.advisor:
        return None
    from tiertrace._advisor.advisor import Advisor

    return Advisor(
        window_s=settings.advisor_window_s,
        capacity=settings.advisor_capacity,
        min_accesses=settings.advisor_min_accesses,
        on_error=lambda exc: _access.report_fault("advisor", exc),
        l1_hit_rate_target=settings.target_l1_hit_rate,
    )


def init(**kwargs: Any) -> Handle:
    """Turn tiertrace on (see the module documentation); returns the live `Handle`."""
    with _LOCK:
        if _HANDLE is not None and _HANDLE.auto:
            shutdown()  # the set-up opentelemetry-instrument made gives way to the application's
        if _HANDLE is not None:
            if not kwargs or resolve(kwargs) == _HANDLE.settings:
                return _HANDLE
            raise ConfigError(
                "tiertrace.init() was already called with other settings; "
                "call tiertrace.shutdown() before initializing again"
            )
        return _start(resolve(kwargs), auto=False)


def attach() -> None:
    """Start tiertrace for instrumentors loaded without ``init()`` (``opentelemetry-instrument``).

    Uses the providers already configured (the distro's) and exporter ``none`` unless
    ``TIERTRACE_EXPORTER`` is set; no instrumentor is started from here.
    """
    with _LOCK:
        if _HANDLE is None:
            settings = resolve(
                {"instrument": [], "exporter": os.environ.get("TIERTRACE_EXPORTER", "none")}
            )
            _start(settings, auto=True)


def _start(settings: Settings, auto: bool) -> Handle:
    global _HANDLE
    handle = Handle(settings)
    handle.auto = auto
    _HANDLE = handle  # before the instrumentors start: they must find it
    try:
        _wire(handle)
    except BaseException:
        _HANDLE = None
        raise
    if not _ATEXIT:
        _ATEXIT.append(atexit.register(shutdown))
    return handle


def _wire(h: Handle) -> None:
    s = h.settings
    TIERS.set(s.tiers)
    state = _access.configure(h.telemetry, h.grouper.on_access)
    state.capture_keys = s.capture_keys
    state.capture_query_text = s.capture_query_text
    state.capture_error_messages = s.capture_error_messages
    _lookup.CLOSE[:] = [h.emitter.close]
    tel = h.telemetry
    tel.observe(
        "tiertrace.cost.usd", "counter", "{USD}", "Cost of tier accesses in US dollars", _costs
    )
    for name, unit, field, desc in _GAUGES:
        tel.observe(name, "gauge", unit, desc, _candidates(field))
    for name in s.instrument:
        dist, module, cls = _INSTRUMENTORS[name]
        if importlib.util.find_spec(dist) is None:
            continue
        instrumentor = getattr(importlib.import_module(module), cls)()
        instrumentor.instrument(skip_dep_check=True)
        h.instrumentors.append(instrumentor)
    set_figures(h)


_GAUGES = (
    ("tiertrace.advisor.candidate.accesses", "{access}", "accesses",
     "Reads of a pre-cache candidate in the advisor window"),
    ("tiertrace.advisor.candidate.latency_savings", "s", "latency_savings_s_per_day",
     "Latency a pre-cache candidate would save per day"),
    ("tiertrace.advisor.candidate.cost_savings.usd", "{USD}", "cost_savings_usd_per_day",
     "Cost a pre-cache candidate would save per day"),
)  # fmt: skip


def _costs() -> Iterable[tuple[float, dict[str, Any]]]:
    """Cost per tier of the live handle; first closes lookups whose window has passed.

    Observable callbacks run before the synchronous instruments are collected, so lookups
    closed here are part of this very collection.
    """
    h = _HANDLE
    if h is None:
        return
    h.grouper.flush(everything=False)
    spent = h.stats.costs()
    for tier in h.settings.tiers:
        attrs = {"tiertrace.tier": tier.name, "tiertrace.tier.level": tier.level}
        yield spent.get(tier.name, 0.0), attrs


def _candidates(field: str) -> Callable[[], Iterable[tuple[float, dict[str, Any]]]]:
    def produce() -> Iterable[tuple[float, dict[str, Any]]]:
        h = _HANDLE
        if h is None or h.advisor is None:
            return
        for c in h.advisor.candidates():
            yield (
                float(getattr(c, field)),
                {"tiertrace.pattern": c.pattern, "tiertrace.tier": c.tier},
            )

    return produce


def handle() -> Handle | None:
    """The live handle, or None before ``init()``."""
    return _HANDLE


def shutdown() -> None:
    """Close what is pending, uninstrument the clients and stop the exporters.

    Bounded: exporters get twice the OTLP export timeout to deliver what is queued.
    """
    global _HANDLE
    with _LOCK:
        h = _HANDLE
        if h is None:
            return
        try:
            h.close_pending()
        finally:
            _uninstrument_all()
            _access.configure(None, None)
            _lookup.CLOSE.clear()
            set_figures(None)
            _HANDLE = None
            h.telemetry.shutdown(export_timeout_s())


def _uninstrument_all() -> None:
    """Uninstrument every tiertrace instrumentor that was loaded, whoever started it
    (``init()``, ``opentelemetry-instrument`` or an ``instrument_client`` call)."""
    for _dist, module, cls in _INSTRUMENTORS.values():
        loaded = sys.modules.get(module)
        if loaded is None:
            continue
        try:
            getattr(loaded, cls)().reset()
        except Exception as fault:
            _access.report_fault("shutdown", fault)
