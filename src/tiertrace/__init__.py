"""tiertrace: OpenTelemetry for three-tier memory — Redis (L1), PostgreSQL (L2), Chroma (L3).

```python
import tiertrace
tiertrace.init(exporter="prometheus")      # or "otlp" (default), "console", "none"

# ... your code using redis, psycopg and chromadb, unchanged ...

snap = tiertrace.stats()
print(snap["window"]["served_by"], snap["window"]["cache_effectiveness"])
```

Every access to a tier becomes a span and a point of ``tiertrace.access.duration`` with tier,
hit and cost; accesses made to answer one query are grouped into a lookup (which tier served
it, how long the fall-through took, what it cost). The documentation site describes tiers and
costs, lookups, events, ``stats()``, the advisor, configuration and privacy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tiertrace import _runtime
from tiertrace._advisor import SUGGESTION_FIELDS, Suggestion
from tiertrace._core.errors import ConfigError
from tiertrace._core.recorder import report_fault as _report_fault
from tiertrace._core.tiers import DEFAULT_TIERS, Tier
from tiertrace._lookups.agent import track_agent
from tiertrace._lookups.grouping import lookup
from tiertrace._memory import AsyncTieredMemory, LookupMetrics, TieredMemory
from tiertrace._runtime import Handle, Settings, reset, shutdown
from tiertrace._runtime.process import handle  # the function (``_runtime.handle`` is a module)
from tiertrace._version import __version__

MetricReaderT = TypeVar("MetricReaderT")

if TYPE_CHECKING:
    from tiertrace._instrument.chroma import ChromaInstrumentor, HashingEmbeddingFunction
    from tiertrace._instrument.psycopg import PsycopgInstrumentor
    from tiertrace._instrument.redis import RedisInstrumentor

__all__ = [
    "DEFAULT_TIERS",
    "AsyncTieredMemory",
    "ChromaInstrumentor",
    "ConfigError",
    "Handle",
    "HashingEmbeddingFunction",
    "LookupMetrics",
    "PsycopgInstrumentor",
    "RedisInstrumentor",
    "Settings",
    "Suggestion",
    "Tier",
    "TieredMemory",
    "__version__",
    "bridge_reader",
    "flush",
    "handle",
    "init",
    "lookup",
    "on_access",
    "reset",
    "shutdown",
    "stats",
    "suggestions",
    "track_agent",
]

_LAZY = {  # imported on first use: `import tiertrace` loads no client library
    "ChromaInstrumentor": "tiertrace._instrument.chroma",
    "HashingEmbeddingFunction": "tiertrace._instrument.chroma",
    "PsycopgInstrumentor": "tiertrace._instrument.psycopg",
    "RedisInstrumentor": "tiertrace._instrument.redis",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tiertrace' has no attribute {name!r}")


def init(
    *,
    exporter: str | None = None,
    prometheus_port: int | None = None,
    prometheus_host: str | None = None,
    capture_keys: str | None = None,
    capture_query_text: bool | None = None,
    capture_error_messages: bool | None = None,
    implicit_lookups: bool | None = None,
    implicit_window_s: float | None = None,
    single_access_events: bool | None = None,
    advisor: bool | None = None,
    advisor_window_s: float | None = None,
    advisor_capacity: int | None = None,
    advisor_min_accesses: int | None = None,
    whatif_sample_rate: float | None = None,
    stats_window_s: float | None = None,
    min_projection_window_s: float | None = None,
    target_cache_effectiveness: float | None = None,
    target_lookup_latency_ms: float | None = None,
    target_l1_hit_rate: float | None = None,
    semconv_metrics: bool | None = None,
    bridge_readers: bool | None = None,
    instrument: Sequence[str] | None = None,
    prices: Mapping[str, float] | None = None,
    tiers: Sequence[Tier] | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    logger_provider: Any = None,
) -> Handle:
    """Turn tiertrace on for this process and return the live `Handle`.

    Every argument left out (``None``) comes from the environment variable
    ``TIERTRACE_<NAME IN CAPITALS>`` if set, else from its default. Exporters read the standard
    ``OTEL_EXPORTER_OTLP_*`` variables themselves.

    Args:
        exporter: ``"otlp"`` (default), ``"prometheus"``, ``"console"`` or ``"none"``.
        prometheus_port: port of the ``/metrics`` endpoint of ``exporter="prometheus"`` (9464).
        prometheus_host: address it binds (``127.0.0.1``; ``0.0.0.0`` exposes it).
        capture_keys: how Redis keys appear: ``"template"`` (default, ``user:{id}:profile``),
            ``"hash"``, ``"raw"`` or ``"none"``.
        capture_query_text: put sanitized SQL in ``db.query.text`` (True).
        capture_error_messages: put exception messages on failed access spans (False: client
            errors quote user data).
        implicit_lookups: group the accesses of your own cache-aside code into lookups (True).
        implicit_window_s: how long an implicit lookup waits for the next tier (1.0 s).
        single_access_events: also log ``memory_tier_access`` for one-access lookups (False).
        advisor: run the pre-cache advisor (True).
        advisor_window_s: the advisor's sliding window (3600 s).
        advisor_capacity: keys the advisor tracks at most (10,000).
        advisor_min_accesses: reads before a key can be suggested (10).
        whatif_sample_rate: share of Redis (L1) keys the TTL what-if replays, chosen by a stable
            hash of the key (1/64; 1 keeps every key); raw keys never leave the process.
        stats_window_s: seconds the ``window`` view of `stats` covers (60 s): it is measured
            from the slots' state recorded by an earlier `stats` call at least that old, so
            with `stats` polled every second it is the last ``stats_window_s`` seconds, and a
            first call covers everything since ``init()``.
        min_projection_window_s: seconds a tier must be observed before `stats` and
            ``tiertrace report`` project its cost per day (60). Until then its
            ``cost_per_day_usd`` is None and ``projection`` says ``"collecting"``.
        target_cache_effectiveness: share of lookups served by level 1 to aim for (0.70).
        target_lookup_latency_ms: mean lookup latency to stay under (50 ms).
        target_l1_hit_rate: level-1 hit rate to aim for (0.40).
        semconv_metrics: also record the semantic-convention ``db.client.operation.duration``.
        bridge_readers: give every reader of the meter provider in use (yours, or the global
            one ``opentelemetry-instrument`` configured) tiertrace's fast metric path, as
            `bridge_reader` does for one reader (False: a provider whose readers are not all
            bridged gets tiertrace's metrics through SDK instruments, ~15 µs more per access).
        instrument: client libraries to instrument, by library or tier name (``"redis"``,
            ``"psycopg"`` or ``"postgresql"``, ``"chroma"``); every installed one by default.
        prices: your prices in USD, overriding those of ``tiers``: per access by tier name,
            per operation as ``"tier:OPERATION"`` (``{"redis": 0.0002, "postgresql": 0.002,
            "chroma": 0.02, "redis:GET": 0.0001}``). From the environment:
            ``TIERTRACE_PRICES="redis=0.0002,postgresql=0.002,chroma=0.02,redis:GET=0.0001"``.
            An entry naming no tier, or not a number >= 0, raises `ConfigError` naming it.
        tiers: the tiers and their prices (`DEFAULT_TIERS` by default, whose prices are
            placeholders: set yours here, e.g. ``Tier("redis", 1, "redis",
            cost_per_access=0.0002, cost_per_operation={"GET": 0.0001})``, or with
            ``prices``). Every `stats` snapshot names the prices it used and where they came
            from (``snap["prices"]``).
        tracer_provider: use this provider instead of the global one (nothing is added to it).
        meter_provider: use this provider instead of the global one.
        logger_provider: use this provider instead of the global one.

    Calling ``init()`` again with no arguments or the same ones returns the same handle.

    Returns:
        The live `Handle`: its ``settings`` are the resolved `Settings`.

    Raises:
        ConfigError: a setting is invalid (the message names it and what to write instead), or
            ``init()`` was already called with other settings (call `shutdown` first).
    """
    given = {k: v for k, v in locals().items() if v is not None}
    return _runtime.init(given)


def bridge_reader(reader: MetricReaderT) -> MetricReaderT:
    """Give ``reader`` tiertrace's metrics from tiertrace's own aggregation (the fast path).

    tiertrace aggregates its histograms and counters itself and merges them into what each of
    its readers collects, instead of calling an SDK instrument per access. The readers tiertrace
    builds (``exporter="otlp"``, ``"prometheus"``, ``"console"``) are bridged already; a
    ``MeterProvider`` of your own gets the same fast path when every one of its readers is
    passed through this function, before or after the provider is built::

        reader = tiertrace.bridge_reader(PeriodicExportingMetricReader(OTLPMetricExporter()))
        provider = MeterProvider(metric_readers=[reader])
        tiertrace.init(meter_provider=provider)

    A provider with a reader that is not bridged still gets every metric, with the same names,
    through SDK instruments (about 15 µs more per access). Returns ``reader``.
    """
    bridged: MetricReaderT = _runtime.bridge_reader(reader)
    return bridged


def flush() -> None:
    """Close pending lookups and accesses now and export everything (no-op before `init`).

    Use it before reading `stats` at the end of a batch job, or before a process is frozen;
    `shutdown` does the same and then uninstruments the clients.
    """
    h = handle()
    if h is not None:
        h.flush()


def stats() -> dict[str, Any]:
    """A snapshot of per-tier and lookup figures, ready for JSON; ``{}`` before `init`.

    Cheap enough to call every second, and free between calls: the figures are read from
    the metric aggregation tiertrace exports, so nothing is kept per access or per lookup for
    them. ``tiertrace report --snapshot FILE`` reads a snapshot saved with ``json.dump``.

    Returns:
        A dict with two views of the same shape, ``window`` (the last ``stats_window_s``
        seconds, 60 by default: each call records the state of the metrics, at most once a
        second, and the window runs from the latest record at least that old, or from `init`
        when there is none — so a first call covers everything since `init`) and ``total``
        (since `init`), each with
        ``lookups``, ``served_by`` (lookups per tier and ``none``), ``cache_effectiveness``,
        ``mean_lookup_latency_ms``, ``p95_lookup_latency_ms``, ``cost_usd``,
        ``cost_per_day_usd``, ``cost_per_month_usd``, ``elapsed_s`` and ``tiers``; per tier
        ``accesses``, ``reads``, ``hits``, ``hit_rate``, ``errors``, ``mean_ms``, ``p50_ms``,
        ``p95_ms``, ``cost_usd``, ``cost_per_day_usd``, ``served``, ``level``. Then
        ``targets`` (``name``, ``op``, ``target``, ``value``, ``met``), ``suggestions``
        (the fields of `Suggestion`) and ``prices`` (the prices the costs use, and whether
        they are the placeholder ``"defaults"`` or yours). The ``total`` counts equal the
        exported metrics. Percentiles are interpolated from the histogram buckets the way
        PromQL's ``histogram_quantile`` does (linearly within a bucket).

        ``cost_per_day_usd`` is the tier's cost over the time that tier was observed, projected
        to a day; it is None, with ``projection == "collecting"`` and ``projection_needs_s``,
        until the tier has been observed for ``min_projection_window_s`` (60 s). The view's
        total is None while any tier with traffic is still collecting.

        ``ttl_curve``: the TTL what-if, one row per candidate TTL with ``ttl_s``,
        ``l1_hit_rate``, ``cache_effectiveness``, ``cost_per_day_usd``,
        ``savings_per_day_usd``, ``sampled_keys``, ``sampled_reads``, ``observed`` and a 95 %
        band (``*_low`` / ``*_high``); ``[]`` before ``min_projection_window_s`` of sampled L1
        reads. ``whatif`` says why (``status``: ``collecting``, ``ready`` …), the sample, the
        observed TTL, the TTL the cache-effectiveness target needs, the model's assumptions
        and the prices used.

        ``self_errors``: tiertrace's own faults since `init`, per component, as counted in
        the ``tiertrace.self.errors`` metric — ``{"export": 3}`` means three batches of
        telemetry could not be delivered to the OTLP collector; ``{}`` when all is well.

    Example:
        ```python
        snap = tiertrace.stats()
        snap["window"]["cache_effectiveness"]          # share of lookups served by level 1
        snap["total"]["tiers"]["redis"]["hit_rate"]    # hits / reads
        [t["name"] for t in snap["targets"] if not t["met"]]
        ```
    """
    h = handle()
    if h is None:
        return {}
    try:
        h.grouper.flush(everything=False)
        snap = h.stats.snapshot()
        curve = h.whatif.rows() if h.whatif is not None else []
        snap["ttl_curve"] = curve
        snap["whatif"] = h.whatif.summary(curve) if h.whatif is not None else {"status": "off"}
        snap["suggestions"] = [_suggestion_dict(s) for s in suggestions()]
        snap["self_errors"] = {c: int(n) for c, n in h.telemetry.metrics.error_count().items()}
        return snap
    except Exception as fault:
        _report_fault("stats", fault)
        return {}


def suggestions() -> list[Suggestion]:
    """The advisor's current findings, pre-cache suggestions first.

    Returns:
        `Suggestion` objects: pre-cache suggestions (with a TTL and the latency and cost they
        would save per day), then cost-share, L1 hit-rate, wasted-fill and top-latency/top-cost
        findings. ``[]`` before `init` and with ``advisor=False``.
    """
    h = handle()
    if h is None:
        return []
    try:
        return h.suggestions()
    except Exception as fault:
        _report_fault("advisor", fault)
        return []


def on_access(callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
    """Call ``callback(event)`` for every ``memory_tier_access`` event, in process.

    The event is ``{"event_type": "memory_tier_access", "payload": {...}}`` with
    ``tier_accessed``, ``tier_latencies``, ``access_chain``, ``total_latency_ms``,
    ``cache_hit``, ``query_type``, ``result_count`` and ``cost_usd``. Every lookup reaches the
    listeners, including implicit lookups of one access. A callback that raises is logged and
    counted in ``tiertrace.self.errors``; the lookup is not affected.

    Args:
        callback: called with the event dict, on the thread that closed the lookup; keep it
            quick.

    Returns:
        A function that unsubscribes ``callback``. Before `init` the callback is not
        registered and the returned function does nothing.
    """
    h = handle()
    if h is None:
        return lambda: None
    return h.emitter.subscribe(callback)


def _suggestion_dict(s: Suggestion) -> dict[str, Any]:
    return {f: getattr(s, f, None) for f in SUGGESTION_FIELDS}
