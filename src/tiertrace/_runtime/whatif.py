"""The TTL what-if of one handle: the sampled replay, priced with what `Stats` observed.

`tiertrace._advisor.whatif.WhatIf` replays the level-1 reads; this module gives it the observed
traffic (`Figures`: L1 reads and hits, lookups, costs per tier, prices) and applies the
projection rule of DESIGN §5: no curve (``stats()["ttl_curve"] == []``, status
``"collecting"``) before ``min_projection_window_s`` (60 s by default) of sampled L1 reads.
It is built when the advisor is on and a level-1 tier is a Redis tier; `rows` feeds
``stats()["ttl_curve"]``, the ``ttl`` suggestion and the ``tiertrace.whatif.*`` gauges.
"""

from __future__ import annotations

from typing import Any

from tiertrace._advisor.whatif import DEFAULT_CAPACITY, Figures, WhatIf, target_ttl
from tiertrace._core import recorder
from tiertrace._runtime.config import Settings
from tiertrace._runtime.stats import Stats

DEFAULT_MIN_WINDOW_S = 60.0


class TtlWhatIf:
    """The replay of one handle and the figures it is priced with."""

    def __init__(self, settings: Settings, stats: Stats) -> None:
        self.settings = settings
        self.stats = stats
        self.sim = WhatIf(
            sample_rate=settings.whatif_sample_rate,
            capacity=DEFAULT_CAPACITY,
            on_error=lambda exc: recorder.report_fault("whatif", exc),
        )
        self.min_window_s = float(
            getattr(settings, "min_projection_window_s", DEFAULT_MIN_WINDOW_S)
        )
        levels = sorted(settings.tiers, key=lambda t: t.level)
        self.l1 = [t for t in levels if t.level == 1]
        deeper = [t for t in levels if t.level > 1]
        self.next_price = deeper[0].cost_per_access if deeper else 0.0
        self.write_price = self.l1[0].cost("SET") if self.l1 else 0.0

    def figures(self) -> Figures:
        """The observed traffic since ``init()`` (the same totals ``stats()["total"]`` shows)."""
        elapsed, tiers, lookups = self.stats.totals()
        l1 = [tiers[t.name] for t in self.l1 if t.name in tiers]
        total_cost = sum(c.cost_usd for c in tiers.values())
        l1_cost = sum(c.cost_usd for c in l1)
        return Figures(
            elapsed_s=elapsed,
            l1_reads=sum(c.reads for c in l1),
            l1_hits=sum(c.hits for c in l1),
            l1_accesses=sum(c.accesses for c in l1),
            l1_cost_usd=l1_cost,
            deep_cost_usd=total_cost - l1_cost,
            total_cost_usd=total_cost,
            lookups=lookups,
            next_tier_price_usd=self.next_price,
            l1_write_price_usd=self.write_price,
        )

    def ready(self) -> bool:
        return self.sim.observed_s() >= self.min_window_s and self.sim.hit_rates() != []

    def rows(self) -> list[dict[str, Any]]:
        """``stats()["ttl_curve"]``: one row per TTL, or ``[]`` before the minimum window."""
        if not self.ready():
            return []
        return self.sim.curve(self.figures())

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """``stats()["whatif"]``: status, sample, observed TTL, the TTL the target needs,
        the model's assumptions and the prices used."""
        out = self.sim.summary(self.figures() if rows else None, self.min_window_s)
        target = self.settings.target_cache_effectiveness
        reach, best = target_ttl(rows, target)
        out["target_cache_effectiveness"] = target
        out["target_ttl_s"] = reach["ttl_s"] if reach else None
        out["best_ttl_s"] = best["ttl_s"] if best else None
        out["prices_usd"] = {t.name: t.cost_per_access for t in self.settings.tiers}
        return out


def make_whatif(settings: Settings, stats: Stats) -> TtlWhatIf | None:
    """The what-if of a handle: with the advisor on and a Redis tier at level 1, else None."""
    if not settings.advisor:
        return None
    if not any(t.level == 1 and t.system == "redis" for t in settings.tiers):
        return None
    return TtlWhatIf(settings, stats)
