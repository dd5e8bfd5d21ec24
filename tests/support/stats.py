"""`Stats` over a real `Metrics` aggregation on a clock the test moves: what ``stats()`` reads.

A test records accesses and lookups into the aggregation slots (as the recorder and the lookup
emitter do) at times of its choosing, and takes snapshots when it wants::

    rig = StatsRig(stats_window_s=10)
    rig.at(1.5).access(REDIS, 0.0002, hit=True).lookup("redis", 1, 0.0002, 0.0001)
    snap = rig.at(2.0).snapshot()
"""

from __future__ import annotations

from typing import Any

from tiertrace._core.metrics import Metrics
from tiertrace._core.tiers import Tier
from tiertrace._runtime.config import Settings
from tiertrace._runtime.stats import Stats

START = 1000.0  # the clock at init(); ``at(t)`` is t seconds later


class Clock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t


class StatsRig:
    """Settings, a `Metrics`, a `Stats` reading it, and their shared clock."""

    def __init__(self, **settings: Any) -> None:
        self.clock = Clock()
        self.settings = Settings(**settings)
        self.metrics = Metrics(self.settings.tiers, clock=self.clock)
        self.stats = Stats(self.settings, self.metrics, clock=self.clock)

    def at(self, t: float) -> StatsRig:
        """Move the clock to ``t`` seconds after init."""
        self.clock.t = START + t
        return self

    def access(
        self,
        tier: Tier,
        seconds: float = 0.001,
        op: str = "GET",
        hit: bool | None = True,
        error: str | None = None,
        n: int = 1,
    ) -> StatsRig:
        """``n`` accesses of ``seconds`` each, recorded as the recorder records them."""
        slot = self.metrics.access.histogram((tier.name, op, hit, error), tier)
        for _ in range(n):
            slot.record(seconds)
        return self

    def lookup(
        self,
        served_by: str,
        level: int,
        seconds: float,
        cost: float,
        query_type: str | None = None,
        n: int = 1,
    ) -> StatsRig:
        """``n`` lookups, recorded as the lookup emitter records them."""
        slot = self.metrics.lookup.histogram((served_by, level, query_type))
        for _ in range(n):
            slot.record(seconds, cost)
        return self

    def snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot()
