"""The aggregation tables of one ``init()``: what the hot path records and the bridge exports.

* ``access`` — ``tiertrace.access.duration`` per (tier, operation, hit, error type); the cost
  counter ``tiertrace.cost.usd`` is derived from it at collection (count × price per operation),
  so an access pays no second update for its cost;
* ``lookup`` — ``tiertrace.lookup.duration`` per (served by, level, query type), each slot also
  summing the lookups' cost;
* ``errors`` — ``tiertrace.self.errors`` per component;
* ``semconv`` — ``db.client.operation.duration`` per (system, operation, error type), only with
  ``semconv_metrics=True``.

Names, units and bounds come from `tiertrace._contract.names`. The tables are bounded (DESIGN §4:
one process exports at most about 2,000 series): attribute sets past a table's limit share an
overflow slot whose operation (or query type, or component) reads ``_other``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tiertrace._contract.names import (
    BUCKETS,
    CACHE_HIT,
    COMPONENT,
    DB_OPERATION,
    DB_SYSTEM,
    ERROR_TYPE,
    HIT,
    QUERY_TYPE,
    SEMCONV_BUCKETS,
    SERVED_BY,
    SERVED_BY_LEVEL,
    TIER,
    TIER_LEVEL,
)
from tiertrace._core.aggregation import OTHER, Attributes, Table
from tiertrace._core.tiers import Tier

AccessKey = tuple[str, str, "bool | None", "str | None"]  # tier name, operation, hit, error
LookupKey = tuple[str, int, "str | None"]
SemconvKey = tuple[str, str, "str | None"]

# `Metrics.totals`, what the advisor's windows are made from: per tier name or ``served_by``
# value, (level, sums since start), the sums in this order
TIER_TOTALS = ("accesses", "latency", "cost", "reads", "read_latency", "hits", "hit_latency")
SERVED_TOTALS = ("lookups", "latency", "cost")
Counted = dict[str, tuple[int, list[float]]]

ACCESS_LIMIT = 64  # × 20 Prometheus series per histogram slot
LOOKUP_LIMIT = 32
ERROR_LIMIT = 32


def _access_attributes(key: AccessKey, tier: Tier) -> Attributes:
    _name, op, hit, error = key
    attrs: Attributes = {
        TIER: tier.name,
        TIER_LEVEL: tier.level,
        DB_SYSTEM: tier.system,
        DB_OPERATION: op,
    }
    if hit is not None:
        attrs[HIT] = hit
    if error is not None:
        attrs[ERROR_TYPE] = error
    return attrs


def _access_overflow(key: AccessKey) -> AccessKey:
    tier, _op, hit, error = key
    return (tier, OTHER, hit, None if error is None else OTHER)


def _lookup_attributes(key: LookupKey, _context: object) -> Attributes:
    served_by, level, query_type = key
    attrs: Attributes = {
        SERVED_BY: served_by,
        SERVED_BY_LEVEL: level,
        CACHE_HIT: level == 1,
    }
    if query_type is not None:
        attrs[QUERY_TYPE] = query_type
    return attrs


def _lookup_overflow(key: LookupKey) -> LookupKey:
    return (key[0], key[1], OTHER)


def _semconv_attributes(key: SemconvKey, _context: object) -> Attributes:
    system, op, error = key
    attrs: Attributes = {DB_SYSTEM: system, DB_OPERATION: op}
    if error is not None:
        attrs[ERROR_TYPE] = error
    return attrs


class Metrics:
    """The tables of one ``init()`` and the instant they started (cumulative start time).

    ``clock`` (seconds, monotonic) stamps when each access and lookup slot was made.
    """

    def __init__(
        self,
        tiers: Sequence[Tier] = (),
        semconv: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.start_ns = time.time_ns()
        self.tiers = tuple(tiers)  # reported with a cost of 0 until their first access
        self.access = Table(BUCKETS, _access_attributes, _access_overflow, ACCESS_LIMIT, clock)
        self.lookup = Table(BUCKETS, _lookup_attributes, _lookup_overflow, LOOKUP_LIMIT, clock)
        self.errors = Table(None, lambda c, _x: {COMPONENT: c}, lambda _c: OTHER, ERROR_LIMIT)
        self.semconv = (
            Table(SEMCONV_BUCKETS, _semconv_attributes, lambda k: (k[0], OTHER, k[2]), 64)
            if semconv
            else None
        )

    def costs(self) -> dict[str, tuple[Tier, float]]:
        """Per tier name: the tier and its cost since start (count × price per operation)."""
        spent: dict[str, tuple[Tier, float]] = {t.name: (t, 0.0) for t in self.tiers}
        for (name, op, _hit, _error), slot in self.access.items():
            tier: Tier = slot.context
            spent[name] = (tier, spent.get(name, (tier, 0.0))[1] + slot.count * tier.cost(op))
        return spent

    def totals(self) -> tuple[Counted, Counted]:
        """What the slots counted since start, for the advisor's windows (it keeps no copy).

        Per tier name: (level, sums in `TIER_TOTALS` order: reads are those with a known hit);
        per ``served_by`` value: (level, sums in `SERVED_TOTALS` order).
        """
        tiers: Counted = {}
        for (name, op, hit, _error), slot in self.access.items():
            tier: Tier = slot.context
            with slot.lock:
                n, seconds = slot.count, slot.sum
            entry = tiers.get(name)
            if entry is None:
                entry = tiers[name] = (tier.level, [0.0] * len(TIER_TOTALS))
            v = entry[1]
            v[0] += n
            v[1] += seconds
            v[2] += n * tier.cost(op)
            if hit is not None:
                v[3] += n
                v[4] += seconds
                if hit:
                    v[5] += n
                    v[6] += seconds
        served: Counted = {}
        for (served_by, level, _query_type), slot in self.lookup.items():
            with slot.lock:
                n, seconds, cost = slot.count, slot.sum, slot.extra
            entry = served.get(served_by)
            if entry is None:
                entry = served[served_by] = (level, [0.0] * len(SERVED_TOTALS))
            v = entry[1]
            v[0] += n
            v[1] += seconds
            v[2] += cost
        return tiers, served

    def error_count(self) -> dict[str, float]:
        """Faults counted per component."""
        return {slot.attributes[COMPONENT]: slot.value for _k, slot in self.errors.items()}
