"""The PromQL of DESIGN §5, written once, and the names of the recording rules.

The recording rules call these builders with ``[5m]`` over all jobs, the dashboards with
``[$__rate_interval]`` and the ``job``/``tier`` variables, ``tiertrace report --prometheus``
with its ``--range``: a rule, the panel and the report showing the same quantity cannot drift
apart. Ratios and means exist only while there is traffic (no NaN), and a tier with reads
but no hits has a hit rate of 0 rather than no series::

    >>> print(cost(("tiertrace_tier",), (), "1h"))
    sum by (tiertrace_tier) (rate(tiertrace_cost_usd_total[1h])) * 86400

Arguments: ``by`` the grouping labels, ``sel`` label matchers of the selector (``'job=~"$job"'``),
``w`` the range (``5m``, ``$__rate_interval``). This module imports nothing of tiertrace but
its sibling `names`.
"""

from __future__ import annotations

from collections.abc import Sequence

from tiertrace._contract.names import (
    ACCESS_DURATION,
    COST,
    HIT,
    LOOKUP_DURATION,
    SERVED_BY_LEVEL,
    TIER,
    TIER_LEVEL,
    label,
)

DAY = 86400
"""Seconds per day: a daily projection is a USD rate times this."""
MONTH_DAYS = 30
"""Days of a monthly projection."""

ACC = ACCESS_DURATION.prometheus
LKP = LOOKUP_DURATION.prometheus
COST_TOTAL = COST.prometheus
BY_TIER = (label(TIER),)
BY_TIER_LEVEL = (label(TIER), label(TIER_LEVEL))
HITS = f'{label(HIT)}="true"'
READS = f'{label(HIT)}!=""'
SERVED_BY_L1 = f'{label(SERVED_BY_LEVEL)}="1"'

# -- recording rules (DESIGN §5 quantities over 5m; costs over 1h) ---------------------------
LOOKUPS_RATE = "tiertrace:lookups:rate5m"
TIER_READS_RATE = "tiertrace_tier:reads:rate5m"
TIER_ACCESSES_RATE = "tiertrace_tier:accesses:rate5m"
TIER_HIT_RATIO = "tiertrace_tier:tiertrace_hit_ratio:rate5m"
CACHE_EFFECTIVENESS = "tiertrace:cache_effectiveness:ratio_rate5m"
LOOKUP_LATENCY_MEAN = "tiertrace:lookup_latency_seconds:mean5m"
LOOKUP_LATENCY_P95 = "tiertrace:lookup_latency_seconds:p95_5m"
TIER_ACCESS_LATENCY_MEAN = "tiertrace_tier:access_latency_seconds:mean5m"
TIER_ACCESS_LATENCY_P95 = "tiertrace_tier:access_latency_seconds:p95_5m"
TIER_COST_DAILY = "tiertrace_tier:cost_usd:daily_projection"
COST_DAILY = "tiertrace:cost_usd:daily_projection"
TIER_COST_MONTHLY = "tiertrace_tier:cost_usd:monthly_projection"
COST_MONTHLY = "tiertrace:cost_usd:monthly_projection"


def _selector(metric: str, sel: Sequence[str], extra: Sequence[str]) -> str:
    matchers = ", ".join([*sel, *extra])
    return f"{metric}{{{matchers}}}" if matchers else metric


def _grouping(by: Sequence[str]) -> str:
    return f" by ({', '.join(by)}) " if by else ""


def sum_rate(by: Sequence[str], metric: str, sel: Sequence[str], w: str, *extra: str) -> str:
    """``sum by (…) (rate(metric{…}[w]))``; ``extra`` matchers follow ``sel``."""
    return f"sum{_grouping(by)}(rate({_selector(metric, sel, extra)}[{w}]))"


def sum_increase(by: Sequence[str], metric: str, sel: Sequence[str], w: str, *extra: str) -> str:
    """``sum by (…) (increase(metric{…}[w]))``: counts over the window."""
    return f"sum{_grouping(by)}(increase({_selector(metric, sel, extra)}[{w}]))"


def last(by: Sequence[str], metric: str, sel: Sequence[str], w: str) -> str:
    """``max by (…) (last_over_time(metric{…}[w]))``: the latest value of a gauge."""
    return f"max{_grouping(by)}(last_over_time({_selector(metric, sel, ())}[{w}]))"


def hit_ratio(by: Sequence[str], sel: Sequence[str], w: str) -> str:
    """Hits / reads (DESIGN §5); 0 for a tier without hits, absent without reads."""
    hits = sum_rate(by, f"{ACC}_count", sel, w, HITS)
    reads = sum_rate(by, f"{ACC}_count", sel, w, READS)
    return f"(\n  {hits}\n  or 0 * {reads}\n)\n/ ({reads} > 0)"


def served_ratio(sel: Sequence[str], w: str) -> str:
    """Cache effectiveness: the share of lookups served by level 1 (DESIGN §5)."""
    l1 = sum_rate((), f"{LKP}_count", sel, w, SERVED_BY_L1)
    lookups = sum_rate((), f"{LKP}_count", sel, w)
    return f"(\n  {l1}\n  or 0 * {lookups}\n)\n/ ({lookups} > 0)"


def mean(metric: str, by: Sequence[str], sel: Sequence[str], w: str) -> str:
    """Mean of a histogram: rate of ``_sum`` / rate of ``_count``, absent without traffic."""
    count = sum_rate(by, f"{metric}_count", sel, w)
    return f"{sum_rate(by, f'{metric}_sum', sel, w)}\n/ ({count} > 0)"


def quantile(q: float, metric: str, by: Sequence[str], sel: Sequence[str], w: str) -> str:
    """``histogram_quantile`` of a histogram, absent (not NaN) without traffic."""
    buckets = sum_rate((*by, "le"), f"{metric}_bucket", sel, w)
    count = sum_rate(by, f"{metric}_count", sel, w)
    return f"histogram_quantile({q}, {buckets})\nand on({', '.join(by)}) ({count} > 0)"


def cost(by: Sequence[str], sel: Sequence[str], w: str, days: int = 1) -> str:
    """Cost projection: the USD rate times the seconds of ``days`` days (DESIGN §5)."""
    return f"{sum_rate(by, COST_TOTAL, sel, w)} * {DAY * days}"
