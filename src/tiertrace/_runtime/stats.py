"""``tiertrace.stats()``: how the tiers are doing, in process, cheap enough to call every second.

A snapshot has two views of the same shape: ``window`` (the last ``stats_window_s`` seconds,
default 60) and ``total`` (since ``init()``)::

    snap = tiertrace.stats()
    snap["window"]["cache_effectiveness"]          # share of lookups served by level 1
    snap["window"]["tiers"]["redis"]["hit_rate"]   # hits / reads
    snap["total"]["tiers"]["chroma"]["cost_per_day_usd"]   # None while "collecting"
    snap["prices"]["redis"]["per_access"], snap["prices"]["source"]
    [t for t in snap["targets"] if not t["met"]]   # cache effectiveness > 70 %, mean lookup
                                                   # latency < 50 ms, L1 hit rate > 40 %

Both views are read from tiertrace's metric aggregation, the slots that
``tiertrace.access.duration``, ``tiertrace.lookup.duration`` and ``tiertrace.cost.usd`` are
exported from: ``stats()`` keeps no copy of its own and does no work per access or per lookup.
So the ``total`` counts are exactly what the exported metrics say.

Per tier: ``accesses``, ``reads`` (accesses with a hit or a miss), ``hits``, ``hit_rate``,
``errors``, ``mean_ms``, ``p50_ms``, ``p95_ms``, ``cost_usd`` (accesses × the tier's price of
their operation, as ``tiertrace.cost.usd``), ``served`` (lookups it served), and the cost
projection:

* ``observed_s`` — the time this tier was actually observed: from its first access to now in
  the ``total`` view; in the ``window`` view the same, but at most the window's length;
* ``cost_per_day_usd`` — ``cost_usd / observed_s × 86,400``, the rate of DESIGN §5. It is
  ``None`` until the tier has been observed for ``min_projection_window_s`` (default 60 s,
  counted from its first access, in both views); meanwhile ``projection`` is ``"collecting"``
  and ``projection_needs_s`` says how many seconds are still missing. ``projection`` is
  ``"ready"`` once there is a number, and ``"no traffic"`` for a tier nothing has accessed
  (in that view; its cost per day is then 0.0);
* the view's ``cost_per_day_usd`` / ``cost_per_month_usd`` (30 days) sum the tiers, and are
  ``None`` ("collecting") while any tier *with traffic* is still collecting: a total that
  silently left out a tier would look smaller than it is. Its ``projection_needs_s`` is the
  wait until every tier with traffic projects.

A tier's first access is when its first access slot was made (the slot's ``created`` time):
no time is taken per access.

The window: every ``snapshot()`` (every ``tiertrace.stats()`` call) records the state of the
slots — per slot its count, sum, cost and bucket counts — at most once per second (once per
``stats_window_s`` / 60 s for a window longer than a minute, so at most about 60 records are
kept). The ``window`` view is the difference between now and the most recent record that is at
least ``stats_window_s`` old, or the zero state at ``init()`` while there is none. So:

* with ``stats()`` polled at least once a second (``tiertrace demo`` polls every second), the
  window is the last ``stats_window_s`` seconds: precisely, at least that and less than that
  plus the spacing of the records (1 s) plus the polling interval;
* polled less often, it reaches back to the latest poll at least ``stats_window_s`` ago;
* a first call covers everything since ``init()`` (the window equals the total).

The view's ``elapsed_s`` is the time the view covers. `Stats.cache_effectiveness` gives the
window's cache effectiveness without a snapshot (and records nothing).

Percentiles (``p50_ms``, ``p95_ms``, ``p95_lookup_latency_ms``) come from the histograms'
bucket counts, interpolated the way PromQL's ``histogram_quantile`` does: linearly within the
bucket the rank falls in (the first bucket starting at 0), and the highest finite bound (10 s)
when it falls in the last, unbounded bucket. They are therefore estimates at the resolution of
the buckets (`tiertrace._contract.names.BUCKETS`: 0.05, 0.1, 0.25, 0.5, 1, 2.5 ms …), the same
figures a Grafana panel computes from the exported histogram.

``snap["prices"]`` names the prices the costs were computed with: per tier ``per_access``,
``per_operation`` and ``source``, and an overall ``source`` — ``"defaults"`` (tiertrace's
placeholder prices: set yours), ``"init"`` (``tiers=`` / ``prices=`` of ``init()``) or
``"environment"`` (``TIERTRACE_PRICES``); the most specific one present wins for the overall
source (environment, then init, then defaults).

The snapshot is plain JSON-ready data: ``tiertrace report --snapshot FILE`` reads it back.

Memory: a record is one array of numbers (``array`` of doubles, one fixed-size row per slot);
the slots are bounded (`tiertrace._core.metrics`), and so are the records, so memory stays
flat however long the process runs.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from tiertrace._contract.names import BUCKETS
from tiertrace._contract.promql import MONTH_DAYS
from tiertrace._contract.targets import CACHE_EFFECTIVENESS, L1_HIT_RATE, LOOKUP_LATENCY, TARGETS
from tiertrace._core.aggregation import HistogramSlot
from tiertrace._core.metrics import AccessKey, LookupKey, Metrics
from tiertrace._core.tiers import DEFAULT_TIERS, Tier
from tiertrace._runtime.config import Settings

DAY = 86400.0
MAX_RECORDS = 60  # records spanning one window (then they are spaced further apart)
_COUNT, _SUM, _EXTRA, _BUCKETS = 0, 1, 2, 3  # a slot's row: count, sum, extra, bucket counts
WIDTH = _BUCKETS + len(BUCKETS) + 1

Row = Sequence[float]  # one slot's row (count, sum, extra, bucket counts...)
Record = tuple[float, "array[float]"]  # clock time and every slot's row, at an offset
_ZERO: Row = (0.0,) * WIDTH


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float:
    """The ``q`` quantile of a histogram, as PromQL's ``histogram_quantile`` estimates it.

    ``counts`` are the bucket counts (not cumulative), one more than ``bounds``: the last
    bucket is unbounded. The quantile is interpolated linearly within the bucket its rank
    (``q`` × the count) falls in, the first bucket starting at 0; a rank in the unbounded
    bucket gives the highest finite bound. 0.0 for an empty histogram (PromQL: NaN).
    """
    total = sum(counts)
    if total <= 0:
        return 0.0
    rank = q * total
    cumulative = 0.0
    for i, upper in enumerate(bounds):
        below = cumulative
        cumulative += counts[i]
        if cumulative >= rank:
            if i == 0 and upper <= 0:
                return upper
            start = bounds[i - 1] if i else 0.0
            if counts[i] <= 0:
                return start
            return start + (upper - start) * ((rank - below) / counts[i])
    return bounds[-1]


def price_table(settings: Settings) -> dict[str, Any]:
    """``snap["prices"]``: the price of each tier and where it came from (module docs)."""
    defaults = {t.name: t for t in DEFAULT_TIERS}
    given = settings.prices or {}
    given_source = str(getattr(settings.prices, "source", "init"))
    table: dict[str, Any] = {}
    sources = set()
    for tier in settings.tiers:
        ops = dict(tier.cost_per_operation or {})
        default = defaults.get(tier.name)
        if any(k == tier.name or k.startswith(tier.name + ":") for k in given):
            source = given_source
        elif (
            default is not None
            and tier.cost_per_access == default.cost_per_access
            and ops == dict(default.cost_per_operation or {})
        ):
            source = "defaults"
        else:
            source = "init"
        sources.add(source)
        table[tier.name] = {
            "per_access": float(tier.cost_per_access),
            "per_operation": {k: float(v) for k, v in ops.items()},
            "source": source,
        }
    table["source"] = next((s for s in ("environment", "init") if s in sources), "defaults")
    return table


class TierTotals(NamedTuple):
    """One tier's counts since ``init()``, as exported (what the TTL what-if is priced with)."""

    accesses: int
    reads: int
    hits: int
    cost_usd: float


class _Access(NamedTuple):
    """One access slot as read at a snapshot."""

    key: AccessKey
    tier: Tier
    created: float
    row: Row


class _Tally:
    """One tier's figures (or the lookups') in one view, added up from slot rows."""

    __slots__ = ("buckets", "cost", "count", "errors", "hits", "l1", "latency", "reads", "served")

    def __init__(self) -> None:
        self.count = self.reads = self.hits = self.errors = self.l1 = 0
        self.latency = self.cost = 0.0
        self.buckets = [0.0] * (len(BUCKETS) + 1)
        self.served: dict[str, int] = {}

    def add(self, row: Row, base: Row) -> int:
        """Add the count, sum and bucket counts ``row`` holds beyond ``base``; returns the
        count added."""
        count = int(row[_COUNT] - base[_COUNT])
        if count:
            self.count += count
            self.latency += row[_SUM] - base[_SUM]
            buckets = self.buckets
            for i in range(len(buckets)):
                buckets[i] += row[_BUCKETS + i] - base[_BUCKETS + i]
        return count

    def quantile_ms(self, q: float) -> float:
        return histogram_quantile(q, BUCKETS, self.buckets) * 1000

    def tier_row(self) -> dict[str, Any]:
        n = self.count
        return {
            "accesses": n,
            "reads": self.reads,
            "hits": self.hits,
            "errors": self.errors,
            "mean_ms": self.latency / n * 1000 if n else 0.0,
            "p50_ms": self.quantile_ms(0.5),
            "p95_ms": self.quantile_ms(0.95),
            "cost_usd": self.cost,
        }


def _row(values: array[float], at: int | None) -> Row:
    """The row at offset ``at`` of a record (zeros for a slot made after the record)."""
    if at is None or at + WIDTH > len(values):
        return _ZERO
    return values[at : at + WIDTH]


def _slot_row(slot: HistogramSlot) -> Row:
    """A slot's row, copied under its lock."""
    p = slot.point()
    return (p.recorded, p.sum, p.extra, *p.bucket_counts)


class Stats:
    """``tiertrace.stats()`` of one handle, read from its `Metrics` (see the module docs).

    ``clock`` (seconds, monotonic) is what every time here is read from; it must be the clock
    ``metrics`` stamps its slots with. Tests pass their own.
    """

    def __init__(
        self, settings: Settings, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.tiers: tuple[Tier, ...] = settings.tiers
        self.settings = settings
        self.metrics = metrics
        self.window_s = float(settings.stats_window_s)
        self.spacing = max(1.0, self.window_s / MAX_RECORDS)  # between two records, at least
        self.min_projection_s = float(settings.min_projection_window_s)
        self.clock = clock
        self.started = clock()
        self.lock = threading.Lock()
        # where each slot's row sits in a record (slots are only ever added)
        self.access_at: dict[AccessKey, int] = {}
        self.lookup_at: dict[LookupKey, int] = {}
        self.records: deque[Record] = deque([(self.started, array("d"))])  # the zero state
        self.prices = price_table(settings)

    # --- records -----------------------------------------------------------------------------

    def _base(self, now: float) -> Record:
        """The record the window starts from: the most recent one at least ``window_s`` old,
        else the zero state (called with the lock held)."""
        cutoff = now - self.window_s
        records = self.records
        # the first record is that old or is the zero state (see _record): the base is at
        # most a few records further, as pruning keeps at most one record older than a window
        base, i, n = records[0], 1, len(records)
        while i < n and records[i][0] <= cutoff:
            base, i = records[i], i + 1
        return base

    def _record(
        self, now: float, access: list[_Access], lookup: list[tuple[LookupKey, Row]]
    ) -> None:
        """Keep the slots' state of ``now`` if the last record is ``spacing`` old, and drop the
        records no window can start from any more (called with the lock held).

        A record is dropped only when the next one is at least ``window_s`` old, so the first
        record is the zero state until some record is old enough to start a window.
        """
        if now - self.records[-1][0] < self.spacing:
            return
        rows: list[tuple[int, Row]] = []
        for a in access:
            at = self.access_at.get(a.key)
            if at is None:
                at = self.access_at[a.key] = self._next_offset()
            rows.append((at, a.row))
        for key, row in lookup:
            at = self.lookup_at.get(key)
            if at is None:
                at = self.lookup_at[key] = self._next_offset()
            rows.append((at, row))
        values = array("d", bytes(8 * self._next_offset()))
        for at, row in rows:
            values[at : at + WIDTH] = array("d", row)
        records = self.records
        records.append((now, values))
        cutoff = now - self.window_s
        while len(records) > 1 and records[1][0] <= cutoff:
            records.popleft()

    def _next_offset(self) -> int:
        return (len(self.access_at) + len(self.lookup_at)) * WIDTH

    # --- figures -----------------------------------------------------------------------------

    def cache_effectiveness(self) -> float:
        """The window's share of lookups served by level 1, without a snapshot.

        It reads each lookup slot's count and the record the window starts from (module docs);
        it records nothing. 0.0 without lookups in the window.
        """
        now = self.clock()
        lookups = l1 = 0.0
        with self.lock:
            values = self._base(now)[1]
            for key, slot in self.metrics.lookup.items():
                at = self.lookup_at.get(key)
                count = slot.count - (values[at] if at is not None and at < len(values) else 0.0)
                lookups += count
                if key[1] == 1:
                    l1 += count
        return l1 / lookups if lookups else 0.0

    def totals(self) -> tuple[float, dict[str, TierTotals], int]:
        """Seconds since ``init()``, each accessed tier's counts and the lookup count since
        ``init()``: the ``total`` view's figures, without a snapshot."""
        elapsed = max(self.clock() - self.started, 1e-9)
        tiers: dict[str, TierTotals] = {}
        for (name, op, hit, _error), slot in self.metrics.access.items():
            n = slot.count
            t = tiers.get(name, TierTotals(0, 0, 0, 0.0))
            tiers[name] = TierTotals(
                t.accesses + n,
                t.reads + (n if hit is not None else 0),
                t.hits + (n if hit else 0),
                t.cost_usd + n * slot.context.cost(op),
            )
        lookups = sum(slot.count for _key, slot in self.metrics.lookup.items())
        return elapsed, tiers, lookups

    def snapshot(self) -> dict[str, Any]:
        access = [
            _Access(key, slot.context, slot.created, _slot_row(slot))
            for key, slot in self.metrics.access.items()
        ]
        lookup = [(key, _slot_row(slot)) for key, slot in self.metrics.lookup.items()]
        now = self.clock()
        with self.lock:
            base_at, base = self._base(now)
            self._record(now, access, lookup)
            access_at, lookup_at = dict(self.access_at), dict(self.lookup_at)
        first: dict[str, float] = {}  # each tier's first access: its oldest slot
        for a in access:
            name = a.tier.name
            if a.row[_COUNT] and a.created < first.get(name, float("inf")):
                first[name] = a.created
        gate = {n: now - at for n, at in first.items()}
        covered = max(now - base_at, 0.0)
        window = self._view(
            *self._tally(
                access,
                lookup,
                lambda k: _row(base, access_at.get(k)),
                lambda k: _row(base, lookup_at.get(k)),
            ),
            {n: min(covered, g) for n, g in gate.items()},
            gate,
            max(covered, 1e-9),
        )
        total = self._view(
            *self._tally(access, lookup, lambda _k: _ZERO, lambda _k: _ZERO),
            gate,
            gate,
            max(now - self.started, 1e-9),
        )
        snap: dict[str, Any] = {
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "window": window,
            "total": total,
            "prices": {
                k: (dict(v, per_operation=dict(v["per_operation"])) if isinstance(v, dict) else v)
                for k, v in self.prices.items()
            },
        }
        snap["targets"] = self.targets(snap["window"])
        return snap

    def _tally(
        self,
        access: list[_Access],
        lookup: list[tuple[LookupKey, Row]],
        access_base: Callable[[AccessKey], Row],
        lookup_base: Callable[[LookupKey], Row],
    ) -> tuple[dict[str, _Tally], _Tally]:
        """Per configured tier and for the lookups: what the slots hold beyond their base."""
        tiers = {t.name: _Tally() for t in self.tiers}
        for a in access:
            t = tiers.get(a.tier.name)
            if t is None:
                continue
            _name, op, hit, error = a.key
            n = t.add(a.row, access_base(a.key))
            if n:
                t.cost += n * a.tier.cost(op)
                if hit is not None:
                    t.reads += n
                    t.hits += n if hit else 0
                if error is not None:
                    t.errors += n
        lookups = _Tally()
        for key, row in lookup:
            start = lookup_base(key)
            n = lookups.add(row, start)
            if n:
                served_by, level, _query_type = key
                lookups.cost += row[_EXTRA] - start[_EXTRA]
                lookups.served[served_by] = lookups.served.get(served_by, 0) + n
                lookups.l1 += n if level == 1 else 0
        return tiers, lookups

    def _project(self, row: dict[str, Any], observed: float | None, gate: float | None) -> None:
        """Put the cost projection of one tier into ``row`` (see the module documentation)."""
        if observed is None or gate is None or not row["accesses"]:
            row.update(
                observed_s=0.0,
                projection="no traffic",
                projection_needs_s=0.0,
                cost_per_day_usd=0.0,
            )
            return
        row["observed_s"] = observed
        if gate < self.min_projection_s:
            row.update(
                projection="collecting",
                projection_needs_s=self.min_projection_s - gate,
                cost_per_day_usd=None,
            )
            return
        row.update(
            projection="ready",
            projection_needs_s=0.0,
            cost_per_day_usd=row["cost_usd"] / max(observed, 1e-9) * DAY,
        )

    def _view(
        self,
        tallies: dict[str, _Tally],
        lookups: _Tally,
        observed: dict[str, float],
        gate: dict[str, float],
        elapsed: float,
    ) -> dict[str, Any]:
        served = lookups.served
        tiers = {}
        for tier in self.tiers:
            row = tallies[tier.name].tier_row()
            row["level"] = tier.level
            row["served"] = served.get(tier.name, 0)
            row["hit_rate"] = row["hits"] / row["reads"] if row["reads"] else 0.0
            self._project(row, observed.get(tier.name), gate.get(tier.name))
            tiers[tier.name] = row
        active = [r for r in tiers.values() if r["projection"] != "no traffic"]
        waiting = [r for r in active if r["projection"] == "collecting"]
        per_day: float | None
        if waiting:
            projection, per_day = "collecting", None
            needs = max(r["projection_needs_s"] for r in waiting)
        else:
            projection = "ready" if active else "no traffic"
            per_day, needs = sum(r["cost_per_day_usd"] for r in active), 0.0
        n = lookups.count
        return {
            "lookups": n,
            "served_by": {
                **{t.name: served.get(t.name, 0) for t in self.tiers},
                "none": served.get("none", 0),
            },
            "cache_effectiveness": lookups.l1 / n if n else 0.0,
            "mean_lookup_latency_ms": lookups.latency / n * 1000 if n else 0.0,
            "p95_lookup_latency_ms": lookups.quantile_ms(0.95),
            "lookup_cost_usd": lookups.cost,
            "cost_usd": sum(r["cost_usd"] for r in tiers.values()),
            "cost_per_day_usd": per_day,
            "cost_per_month_usd": None if per_day is None else per_day * MONTH_DAYS,
            "projection": projection,
            "projection_needs_s": needs,
            "min_projection_window_s": self.min_projection_s,
            "elapsed_s": elapsed,
            "tiers": tiers,
        }

    def targets(self, view: dict[str, Any]) -> list[dict[str, Any]]:
        s = self.settings
        l1 = [r for r in view["tiers"].values() if r["level"] == 1 and r["reads"]]
        values = {
            CACHE_EFFECTIVENESS.name: view["cache_effectiveness"],
            LOOKUP_LATENCY.name: view["mean_lookup_latency_ms"],
            L1_HIT_RATE.name: sum(r["hits"] for r in l1) / sum(r["reads"] for r in l1)
            if l1
            else 0.0,
        }
        rows = []
        for t in TARGETS:
            limit, v = getattr(s, t.setting), values[t.name]
            met = bool(view["lookups"]) and (v > limit if t.op == ">" else v < limit)
            rows.append({"name": t.name, "op": t.op, "target": limit, "value": v, "met": met})
        return rows
