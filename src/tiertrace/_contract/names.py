"""The metric contract of DESIGN §4: scope, bucket bounds, attribute names, one spec per instrument.

Every name the runtime registers and every name the report, the rules and the dashboards
query comes from here::

    >>> ACCESS_DURATION.name, ACCESS_DURATION.prometheus
    ('tiertrace.access.duration', 'tiertrace_access_duration_seconds')
    >>> label(TIER)
    'tiertrace_tier'

This module imports nothing of tiertrace.
"""

from __future__ import annotations

from dataclasses import dataclass

SCOPE = "tiertrace"
"""Instrumentation scope of every span, metric and log record tiertrace emits."""

BUCKETS: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Explicit bucket bounds (seconds) of both tiertrace histograms."""

SEMCONV_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
"""Bucket bounds of ``db.client.operation.duration`` (``semconv_metrics=True``)."""

# -- attribute names (metric attributes; Prometheus labels via `label`) ----------------------
TIER = "tiertrace.tier"
TIER_LEVEL = "tiertrace.tier.level"
HIT = "tiertrace.hit"
SERVED_BY = "tiertrace.served_by"
SERVED_BY_LEVEL = "tiertrace.served_by.level"
CACHE_HIT = "tiertrace.cache_hit"
QUERY_TYPE = "tiertrace.query_type"
PATTERN = "tiertrace.pattern"
COMPONENT = "tiertrace.component"
TTL = "tiertrace.ttl"
DB_SYSTEM = "db.system.name"
DB_COLLECTION = "db.collection.name"
SPAN_COST = "tiertrace.cost"
"""Span attribute: the cost of one access, or the sum of a lookup's (USD)."""
DB_OPERATION = "db.operation.name"
ERROR_TYPE = "error.type"


def label(attribute: str) -> str:
    """The Prometheus label of an attribute: ``tiertrace.tier.level`` → ``tiertrace_tier_level``."""
    return attribute.replace(".", "_")


@dataclass(frozen=True)
class Instrument:
    """One instrument of DESIGN §4."""

    name: str
    """OpenTelemetry instrument name."""
    kind: str
    """``histogram``, ``counter`` or ``gauge``."""
    unit: str
    description: str
    prometheus: str
    """Prometheus metric name (histograms: the base of ``_bucket``, ``_sum``, ``_count``)."""
    attributes: tuple[str, ...]
    """Attribute keys the instrument's points may carry."""

    @property
    def labels(self) -> tuple[str, ...]:
        """The Prometheus labels of :attr:`attributes`."""
        return tuple(label(a) for a in self.attributes)

    def series(self, suffix: str) -> str:
        """A histogram's series: ``series("count")`` → ``…_seconds_count``."""
        return f"{self.prometheus}_{suffix}"


ACCESS_DURATION = Instrument(
    "tiertrace.access.duration",
    "histogram",
    "s",
    "Duration of one access to a memory tier",
    "tiertrace_access_duration_seconds",
    (TIER, TIER_LEVEL, HIT, DB_SYSTEM, DB_OPERATION, ERROR_TYPE),
)
LOOKUP_DURATION = Instrument(
    "tiertrace.lookup.duration",
    "histogram",
    "s",
    "Duration of one lookup: the whole fall-through across tiers",
    "tiertrace_lookup_duration_seconds",
    (SERVED_BY, SERVED_BY_LEVEL, CACHE_HIT, QUERY_TYPE),
)
COST = Instrument(
    "tiertrace.cost.usd",
    "counter",
    "{USD}",
    "Cost of tier accesses in US dollars",
    "tiertrace_cost_usd_total",
    (TIER, TIER_LEVEL),
)
ADVISOR_ACCESSES = Instrument(
    "tiertrace.advisor.candidate.accesses",
    "gauge",
    "{access}",
    "Reads of a pre-cache candidate in the advisor window",
    "tiertrace_advisor_candidate_accesses",
    (PATTERN, TIER),
)
ADVISOR_LATENCY_SAVINGS = Instrument(
    "tiertrace.advisor.candidate.latency_savings",
    "gauge",
    "s",
    "Latency a pre-cache candidate would save per day",
    "tiertrace_advisor_candidate_latency_savings_seconds",
    (PATTERN, TIER),
)
ADVISOR_COST_SAVINGS = Instrument(
    "tiertrace.advisor.candidate.cost_savings.usd",
    "gauge",
    "{USD}",
    "Cost a pre-cache candidate would save per day",
    "tiertrace_advisor_candidate_cost_savings_usd",
    (PATTERN, TIER),
)
WHATIF_EFFECTIVENESS = Instrument(
    "tiertrace.whatif.cache_effectiveness",
    "gauge",
    "{ratio}",
    "Cache effectiveness the observed traffic would have had with this L1 TTL (what-if)",
    "tiertrace_whatif_cache_effectiveness",
    (TTL,),
)
WHATIF_COST = Instrument(
    "tiertrace.whatif.cost.usd",
    "gauge",
    "{USD}",
    "Cost per day of every tier the observed traffic would have had with this L1 TTL (what-if)",
    "tiertrace_whatif_cost_usd",
    (TTL,),
)
SELF_ERRORS = Instrument(
    "tiertrace.self.errors",
    "counter",
    "{error}",
    "Faults inside tiertrace that were caught; the application was unharmed",
    "tiertrace_self_errors_total",
    (COMPONENT,),
)
SEMCONV_DURATION = Instrument(
    "db.client.operation.duration",
    "histogram",
    "s",
    "Duration of database client operations",
    "db_client_operation_duration_seconds",
    (DB_SYSTEM, DB_OPERATION, ERROR_TYPE),
)

INSTRUMENTS: tuple[Instrument, ...] = (
    ACCESS_DURATION,
    LOOKUP_DURATION,
    COST,
    ADVISOR_ACCESSES,
    ADVISOR_LATENCY_SAVINGS,
    ADVISOR_COST_SAVINGS,
    WHATIF_EFFECTIVENESS,
    WHATIF_COST,
    SELF_ERRORS,
)
"""The instruments of DESIGN §4 (``db.client.operation.duration`` is opt-in and not listed)."""

ADVISOR_GAUGES: tuple[Instrument, ...] = (
    ADVISOR_ACCESSES,
    ADVISOR_LATENCY_SAVINGS,
    ADVISOR_COST_SAVINGS,
)

WHATIF_GAUGES: tuple[Instrument, ...] = (WHATIF_EFFECTIVENESS, WHATIF_COST)
"""The TTL what-if's gauges: one series per candidate TTL (at most 16), ``ttl`` in seconds.

A predicted ratio has no counts to divide in PromQL, so cache effectiveness is a gauge here;
its unit is the annotation ``{ratio}`` (no ``_ratio`` suffix in Prometheus)."""
