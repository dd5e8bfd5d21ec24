"""``tiertrace.stats()``: how the tiers are doing, in process, cheap enough to call every second.

A snapshot has two views of the same shape: ``window`` (the last ``stats_window`` lookups,
default 1,000, and the last as many accesses per tier) and ``total`` (since ``init()``)::

    snap = tiertrace.stats()
    snap["window"]["cache_effectiveness"]          # share of lookups served by level 1
    snap["window"]["tiers"]["redis"]["hit_rate"]   # hits / reads
    snap["total"]["tiers"]["chroma"]["cost_per_day_usd"]
    [t for t in snap["targets"] if not t["met"]]   # cache effectiveness > 70 %, mean lookup
                                                   # latency < 50 ms, L1 hit rate > 40 %

Per tier: ``accesses``, ``reads``, ``hits``, ``hit_rate``, ``errors``, ``mean_ms``, ``p50_ms``,
``p95_ms``, ``cost_usd``, ``cost_per_day_usd`` (cost over the elapsed time, projected to a day),
``served`` (lookups it served). The ``total`` counts equal what the exported metrics say.
The snapshot is plain JSON-ready data: ``tiertrace report --snapshot FILE`` reads it back.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from tiertrace._contract.targets import CACHE_EFFECTIVENESS, L1_HIT_RATE, LOOKUP_LATENCY, TARGETS
from tiertrace._core.recorder import Access
from tiertrace._core.tiers import Tier
from tiertrace._runtime.config import Settings

DAY = 86400.0


class _TierCounts:
    __slots__ = ("accesses", "cost", "errors", "hits", "latency", "reads", "served")

    def __init__(self) -> None:
        self.accesses = self.reads = self.hits = self.errors = self.served = 0
        self.latency = self.cost = 0.0


def _pct(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class Stats:
    """Counters and rolling windows fed by the recorder and the lookup grouper."""

    def __init__(self, settings: Settings) -> None:
        self.tiers: tuple[Tier, ...] = settings.tiers
        self.settings = settings
        self.window = settings.stats_window
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.total = {t.name: _TierCounts() for t in self.tiers}
        self.recent: dict[str, deque[tuple[float, float, bool | None, bool, float]]] = {
            t.name: deque(maxlen=self.window) for t in self.tiers
        }
        self.lookups: deque[tuple[float, str, int, float, float]] = deque(maxlen=self.window)
        self.window_l1 = 0  # lookups in the window served at level 1
        self.lookup_count = 0
        self.lookup_latency = 0.0
        self.lookup_cost = 0.0
        self.served_total: dict[str, int] = {}

    def observe_access(self, acc: Access) -> None:
        now = time.monotonic()
        with self.lock:
            counts = self.total.get(acc.tier.name)
            if counts is None:
                return
            counts.accesses += 1
            counts.latency += acc.duration_s
            counts.cost += acc.cost
            if acc.error_type is not None:
                counts.errors += 1
            if acc.hit is not None:
                counts.reads += 1
                counts.hits += acc.hit
            self.recent[acc.tier.name].append(
                (now, acc.duration_s, acc.hit, acc.error_type is not None, acc.cost)
            )

    def observe_lookup(self, served_by: str, level: int, seconds: float, cost: float) -> None:
        with self.lock:
            self.lookup_count += 1
            self.lookup_latency += seconds
            self.lookup_cost += cost
            self.served_total[served_by] = self.served_total.get(served_by, 0) + 1
            if len(self.lookups) == self.lookups.maxlen and self.lookups[0][2] == 1:
                self.window_l1 -= 1
            self.window_l1 += level == 1
            self.lookups.append((time.monotonic(), served_by, level, seconds, cost))

    def costs(self) -> dict[str, float]:
        """Cumulative cost per tier since init() (what ``tiertrace.cost.usd`` reports)."""
        with self.lock:
            return {name: c.cost for name, c in self.total.items()}

    def cache_effectiveness(self) -> float:
        """Share of the window's lookups served by level 1 (cheap: kept as a running count)."""
        with self.lock:
            return self.window_l1 / len(self.lookups) if self.lookups else 0.0

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            total_tiers = {n: vars_of(c) for n, c in self.total.items()}
            recent = {n: list(d) for n, d in self.recent.items()}
            lookups = list(self.lookups)
            total = {
                "lookups": self.lookup_count,
                "served_by": dict(self.served_total),
                "latency": self.lookup_latency,
                "cost": self.lookup_cost,
            }
        elapsed = max(now - self.started, 1e-9)
        window = self._window_view(recent, lookups, now)
        snap: dict[str, Any] = {
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "window": window,
            "total": self._total_view(total_tiers, total, elapsed, window),
        }
        snap["targets"] = self.targets(snap["window"])
        return snap

    def _tier_rows(
        self, per_tier: dict[str, dict[str, Any]], served: dict[str, int], elapsed: float
    ) -> dict[str, Any]:
        rows = {}
        for tier in self.tiers:
            row = per_tier[tier.name]
            row["level"] = tier.level
            row["served"] = served.get(tier.name, 0)
            row["hit_rate"] = row["hits"] / row["reads"] if row["reads"] else 0.0
            row["cost_per_day_usd"] = row["cost_usd"] / elapsed * DAY
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
            "cost_per_day_usd": tier_cost / elapsed * DAY,
            "cost_per_month_usd": tier_cost / elapsed * DAY * 30,
            "elapsed_s": elapsed,
            "tiers": tiers,
        }

    def _window_view(
        self, recent: dict[str, list[Any]], lookups: list[Any], now: float
    ) -> dict[str, Any]:
        starts = [d[0][0] for d in recent.values() if d] + ([lookups[0][0]] if lookups else [])
        elapsed = max(now - min(starts), 1e-3) if starts else 1e-3
        per_tier = {}
        for name, items in recent.items():
            lat = sorted(i[1] for i in items)
            reads = [i[2] for i in items if i[2] is not None]
            per_tier[name] = {
                "accesses": len(items),
                "reads": len(reads),
                "hits": sum(reads),
                "errors": sum(1 for i in items if i[3]),
                "mean_ms": sum(lat) / len(lat) * 1000 if lat else 0.0,
                "p50_ms": _pct(lat, 0.5) * 1000,
                "p95_ms": _pct(lat, 0.95) * 1000,
                "cost_usd": sum(i[4] for i in items),
            }
        served: dict[str, int] = {}
        for item in lookups:
            served[item[1]] = served.get(item[1], 0) + 1
        durations = sorted(i[3] for i in lookups)
        return self._view(
            self._tier_rows(per_tier, served, elapsed),
            len(lookups),
            served,
            sum(durations),
            sum(i[4] for i in lookups),
            elapsed,
            _pct(durations, 0.95),
        )

    def _total_view(
        self,
        tiers: dict[str, dict[str, Any]],
        total: dict[str, Any],
        elapsed: float,
        window: dict[str, Any],
    ) -> dict[str, Any]:
        rows = self._tier_rows(tiers, total["served_by"], elapsed)
        for name, row in rows.items():  # percentiles come from the rolling window
            row["p50_ms"] = window["tiers"][name]["p50_ms"]
            row["p95_ms"] = window["tiers"][name]["p95_ms"]
        return self._view(
            rows,
            total["lookups"],
            total["served_by"],
            total["latency"],
            total["cost"],
            elapsed,
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


def vars_of(c: _TierCounts) -> dict[str, Any]:
    return {
        "accesses": c.accesses,
        "reads": c.reads,
        "hits": c.hits,
        "errors": c.errors,
        "mean_ms": c.latency / c.accesses * 1000 if c.accesses else 0.0,
        "p50_ms": 0.0,
        "p95_ms": 0.0,
        "cost_usd": c.cost,
    }
