"""``tiertrace.stats()``: how the tiers are doing, in process, cheap enough to call every second.

A snapshot has two views of the same shape: ``window`` (the last ``stats_window`` lookups,
default 1,000, and the last as many accesses per tier) and ``total`` (since ``init()``)::

    snap = tiertrace.stats()
    snap["window"]["cache_effectiveness"]          # share of lookups served by level 1
    snap["window"]["tiers"]["redis"]["hit_rate"]   # hits / reads
    snap["total"]["tiers"]["chroma"]["cost_per_day_usd"]   # None while "collecting"
    snap["prices"]["redis"]["per_access"], snap["prices"]["source"]
    [t for t in snap["targets"] if not t["met"]]   # cache effectiveness > 70 %, mean lookup
                                                   # latency < 50 ms, L1 hit rate > 40 %

Per tier: ``accesses``, ``reads``, ``hits``, ``hit_rate``, ``errors``, ``mean_ms``, ``p50_ms``,
``p95_ms``, ``cost_usd``, ``served`` (lookups it served), and the cost projection:

* ``observed_s`` — the time this tier was actually observed: from its first access to now in
  the ``total`` view, from its oldest access still in the window to now in the ``window`` view;
* ``cost_per_day_usd`` — ``cost_usd / observed_s × 86,400``, the rate of DESIGN §5. It is
  ``None`` until the tier has been observed for ``min_projection_window_s`` (default 60 s,
  counted from its first access, in both views); meanwhile ``projection`` is ``"collecting"``
  and ``projection_needs_s`` says how many seconds are still missing. ``projection`` is
  ``"ready"`` once there is a number, and ``"no traffic"`` for a tier nothing has accessed
  (its cost per day is then 0.0);
* the view's ``cost_per_day_usd`` / ``cost_per_month_usd`` (30 days) sum the tiers, and are
  ``None`` ("collecting") while any tier *with traffic* is still collecting: a total that
  silently left out a tier would look smaller than it is. Its ``projection_needs_s`` is the
  wait until every tier with traffic projects.

``snap["prices"]`` names the prices the costs were computed with: per tier ``per_access``,
``per_operation`` and ``source``, and an overall ``source`` — ``"defaults"`` (tiertrace's
placeholder prices: set yours), ``"init"`` (``tiers=`` / ``prices=`` of ``init()``) or
``"environment"`` (``TIERTRACE_PRICES``); the most specific one present wins for the overall
source (environment, then init, then defaults).

The ``total`` counts equal what the exported metrics say. The snapshot is plain JSON-ready
data: ``tiertrace report --snapshot FILE`` reads it back.

Memory: the rolling windows are fixed-size rings of numbers (``array`` of doubles and bytes
plus an index), allocated at ``init()``; recording an access or a lookup writes numbers into
them and keeps no object of its own, so memory stays flat however long the process runs.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from tiertrace._contract.promql import MONTH_DAYS
from tiertrace._contract.targets import CACHE_EFFECTIVENESS, L1_HIT_RATE, LOOKUP_LATENCY, TARGETS
from tiertrace._core.recorder import Access
from tiertrace._core.tiers import DEFAULT_TIERS, Tier
from tiertrace._runtime.config import Settings

DAY = 86400.0
_READ, _HIT, _ERROR = 1, 2, 4  # bits of an access's flags byte in the ring
_MAX_SERVED = 64  # distinct served_by values kept apart in the lookup ring (then "_other")


def _zeros(code: str, size: int) -> array[Any]:
    return array(code, bytes(array(code).itemsize * size))


class _TierStats:
    """Totals of one tier since init, and a ring of its last ``size`` accesses."""

    __slots__ = (
        "accesses",
        "at",
        "cost",
        "errors",
        "first",
        "flags",
        "hits",
        "latency",
        "level",
        "r_cost",
        "r_lat",
        "reads",
        "size",
    )

    def __init__(self, level: int, size: int) -> None:
        self.level = level
        self.accesses = self.reads = self.hits = self.errors = 0
        self.latency = self.cost = 0.0
        self.first = 0.0  # clock time of the first access (valid when accesses > 0)
        self.size = size  # the ring: access number k is at index k % size
        self.at = _zeros("d", size)  # clock time of each access in the ring
        self.r_lat = _zeros("d", size)
        self.r_cost = _zeros("d", size)
        self.flags = _zeros("B", size)  # _READ | _HIT | _ERROR


class _LookupRing:
    """The last ``size`` lookups as numbers: time, served-by index, level, seconds, cost."""

    __slots__ = ("at", "cost", "level", "n", "next", "seconds", "served", "size")

    def __init__(self, size: int) -> None:
        self.size, self.n, self.next = size, 0, 0
        self.at = _zeros("d", size)
        self.served = _zeros("h", size)
        self.level = _zeros("h", size)
        self.seconds = _zeros("d", size)
        self.cost = _zeros("d", size)


def _pct(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _ordered(values: array[Any], n: int, nxt: int) -> list[Any]:
    """The ring's valid entries, oldest first."""
    if n < len(values):
        return values[:n].tolist()
    return values[nxt:].tolist() + values[:nxt].tolist()


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


class Stats:
    """Counters and rolling windows fed by the recorder and the lookup grouper.

    ``clock`` (seconds, monotonic) is what every time here is read from; tests pass their own.
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.tiers: tuple[Tier, ...] = settings.tiers
        self.settings = settings
        self.window = settings.stats_window
        self.min_projection_s = float(settings.min_projection_window_s)
        self.clock = clock
        self.started = clock()
        self.lock = threading.Lock()
        self.by_name = {t.name: _TierStats(t.level, self.window) for t in self.tiers}
        self.lookups = _LookupRing(self.window)
        self.window_l1 = 0  # lookups in the ring served at level 1
        self.lookup_count = 0
        self.lookup_latency = 0.0
        self.lookup_cost = 0.0
        self.served_total: dict[str, int] = {}
        self.served_names: list[str] = []  # index in the lookup ring -> served_by
        self.served_index: dict[str, int] = {}
        self.prices = price_table(settings)

    def observe_single(self, acc: Access) -> None:
        """An access that hit and, at once, the lookup it made alone (an L1 hit): one lock."""
        now = self.clock()
        with self.lock:
            self._access(acc, now)
            self._lookup(acc.tier.name, acc.level, acc.duration_s, acc.cost, now)

    def observe_access(self, acc: Access) -> None:
        now = self.clock()
        with self.lock:
            self._access(acc, now)

    def _access(self, acc: Access, now: float) -> None:
        # called with the lock held
        t = self.by_name.get(acc.tier.name)
        if t is None:
            return
        hit = acc.hit
        seconds, cost = acc.duration_s, acc.cost
        flags = 0 if hit is None else 3 if hit else 1  # _READ | _HIT, _READ
        if acc.error_type is not None:
            flags |= 4  # _ERROR
        count = t.accesses
        if not count:
            t.first = now
        t.accesses = count + 1
        i = count % t.size
        t.at[i] = now
        t.r_lat[i] = seconds
        t.r_cost[i] = cost
        t.flags[i] = flags
        t.latency += seconds
        t.cost += cost
        if flags:
            t.reads += flags & 1
            t.hits += (flags & 2) >> 1
            t.errors += flags >> 2

    def observe_lookup(self, served_by: str, level: int, seconds: float, cost: float) -> None:
        now = self.clock()
        with self.lock:
            self._lookup(served_by, level, seconds, cost, now)

    def _lookup(self, served_by: str, level: int, seconds: float, cost: float, now: float) -> None:
        # called with the lock held
        self.lookup_count += 1
        self.lookup_latency += seconds
        self.lookup_cost += cost
        self.served_total[served_by] = self.served_total.get(served_by, 0) + 1
        index = self.served_index.get(served_by)
        if index is None:
            if len(self.served_names) >= _MAX_SERVED:
                served_by = "_other"
            index = self.served_index.get(served_by)
            if index is None:
                index = self.served_index[served_by] = len(self.served_names)
                self.served_names.append(served_by)
        r = self.lookups
        i = r.next
        if r.n == r.size and r.level[i] == 1:
            self.window_l1 -= 1
        self.window_l1 += level == 1
        r.at[i] = now
        r.served[i] = index
        r.level[i] = level
        r.seconds[i] = seconds
        r.cost[i] = cost
        i += 1
        r.next = 0 if i == r.size else i
        if r.n < r.size:
            r.n += 1

    def cache_effectiveness(self) -> float:
        """Share of the window's lookups served by level 1 (cheap: kept as a running count)."""
        with self.lock:
            n = self.lookups.n
            return self.window_l1 / n if n else 0.0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            now = self.clock()
            totals = {n: _total_row(t) for n, t in self.by_name.items()}
            first = {n: t.first for n, t in self.by_name.items() if t.accesses}
            rings = {n: _ring_copy(t) for n, t in self.by_name.items()}
            r = self.lookups
            lookups = {
                "at": _ordered(r.at, r.n, r.next),
                "served": _ordered(r.served, r.n, r.next),
                "seconds": r.seconds[: r.n].tolist(),
                "cost": r.cost[: r.n].tolist(),
            }
            names = list(self.served_names)
            total = {
                "lookups": self.lookup_count,
                "served_by": dict(self.served_total),
                "latency": self.lookup_latency,
                "cost": self.lookup_cost,
            }
        recent = {n: _ring_row(*ring) for n, ring in rings.items()}
        gate = {n: now - at for n, at in first.items()}  # each tier's observed time since init
        window = self._window_view(recent, lookups, names, now, gate)
        snap: dict[str, Any] = {
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "window": window,
            "total": self._total_view(totals, total, now, gate, window),
            "prices": {
                k: (dict(v, per_operation=dict(v["per_operation"])) if isinstance(v, dict) else v)
                for k, v in self.prices.items()
            },
        }
        snap["targets"] = self.targets(snap["window"])
        return snap

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

    def _tier_rows(
        self,
        per_tier: dict[str, dict[str, Any]],
        served: dict[str, int],
        observed: dict[str, float],
        gate: dict[str, float],
    ) -> dict[str, Any]:
        rows = {}
        for tier in self.tiers:
            row = per_tier[tier.name]
            row["level"] = tier.level
            row["served"] = served.get(tier.name, 0)
            row["hit_rate"] = row["hits"] / row["reads"] if row["reads"] else 0.0
            self._project(row, observed.get(tier.name), gate.get(tier.name))
            rows[tier.name] = row
        return rows

    def _view(
        self,
        tiers: dict[str, Any],
        lookups: int,
        served: dict[str, int],
        latency: float,
        cost: float,
        elapsed: float,
        p95: float,
    ) -> dict[str, Any]:
        l1 = sum(served.get(t.name, 0) for t in self.tiers if t.level == 1)
        tier_cost = sum(r["cost_usd"] for r in tiers.values())
        active = [r for r in tiers.values() if r["projection"] != "no traffic"]
        waiting = [r for r in active if r["projection"] == "collecting"]
        per_day: float | None
        if waiting:
            projection, per_day = "collecting", None
            needs = max(r["projection_needs_s"] for r in waiting)
        else:
            projection = "ready" if active else "no traffic"
            per_day, needs = sum(r["cost_per_day_usd"] for r in active), 0.0
        return {
            "lookups": lookups,
            "served_by": {
                **{t.name: served.get(t.name, 0) for t in self.tiers},
                "none": served.get("none", 0),
            },
            "cache_effectiveness": l1 / lookups if lookups else 0.0,
            "mean_lookup_latency_ms": latency / lookups * 1000 if lookups else 0.0,
            "p95_lookup_latency_ms": p95 * 1000,
            "lookup_cost_usd": cost,
            "cost_usd": tier_cost,
            "cost_per_day_usd": per_day,
            "cost_per_month_usd": None if per_day is None else per_day * MONTH_DAYS,
            "projection": projection,
            "projection_needs_s": needs,
            "min_projection_window_s": self.min_projection_s,
            "elapsed_s": elapsed,
            "tiers": tiers,
        }

    def _window_view(
        self,
        recent: dict[str, dict[str, Any]],
        lookups: dict[str, list[Any]],
        names: list[str],
        now: float,
        gate: dict[str, float],
    ) -> dict[str, Any]:
        oldest = [r["oldest"] for r in recent.values() if r["accesses"]]
        oldest += lookups["at"][:1]
        elapsed = max(now - min(oldest), 1e-3) if oldest else 1e-3
        observed = {n: max(now - r["oldest"], 0.0) for n, r in recent.items() if r["accesses"]}
        for r in recent.values():
            del r["oldest"]
        served: dict[str, int] = {}
        for index in lookups["served"]:
            served[names[index]] = served.get(names[index], 0) + 1
        durations = sorted(lookups["seconds"])
        return self._view(
            self._tier_rows(recent, served, observed, gate),
            len(durations),
            served,
            sum(durations),
            sum(lookups["cost"]),
            elapsed,
            _pct(durations, 0.95),
        )

    def _total_view(
        self,
        tiers: dict[str, dict[str, Any]],
        total: dict[str, Any],
        now: float,
        gate: dict[str, float],
        window: dict[str, Any],
    ) -> dict[str, Any]:
        rows = self._tier_rows(tiers, total["served_by"], gate, gate)
        for name, row in rows.items():  # percentiles come from the rolling window
            row["p50_ms"] = window["tiers"][name]["p50_ms"]
            row["p95_ms"] = window["tiers"][name]["p95_ms"]
        return self._view(
            rows,
            total["lookups"],
            total["served_by"],
            total["latency"],
            total["cost"],
            max(now - self.started, 1e-9),
            window["p95_lookup_latency_ms"] / 1000,
        )

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


def _total_row(t: _TierStats) -> dict[str, Any]:
    return {
        "accesses": t.accesses,
        "reads": t.reads,
        "hits": t.hits,
        "errors": t.errors,
        "mean_ms": t.latency / t.accesses * 1000 if t.accesses else 0.0,
        "p50_ms": 0.0,
        "p95_ms": 0.0,
        "cost_usd": t.cost,
    }


_Ring = tuple[int, float, "array[float]", "array[float]", "array[int]"]


def _ring_copy(t: _TierStats) -> _Ring:
    """A copy of one tier's ring (taken under the lock; the figures are made outside it)."""
    n = min(t.accesses, t.size)
    oldest = t.at[t.accesses % t.size if t.accesses > t.size else 0] if n else 0.0
    return n, oldest, t.r_lat[:n], t.r_cost[:n], t.flags[:n]


def _ring_row(
    n: int, oldest: float, latency: array[float], cost: array[float], flags: array[int]
) -> dict[str, Any]:
    """The window figures of one tier."""
    lat = sorted(latency)
    counts = [0] * 8
    for f in flags:
        counts[f] += 1
    return {
        "accesses": n,
        "reads": sum(counts[f] for f in range(8) if f & _READ),
        "hits": sum(counts[f] for f in range(8) if f & _HIT),
        "errors": sum(counts[f] for f in range(8) if f & _ERROR),
        "mean_ms": sum(lat) / n * 1000 if n else 0.0,
        "p50_ms": _pct(lat, 0.5) * 1000,
        "p95_ms": _pct(lat, 0.95) * 1000,
        "cost_usd": sum(cost),
        "oldest": oldest,
    }
