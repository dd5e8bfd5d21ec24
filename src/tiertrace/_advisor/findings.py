"""The advisor's rules: a `tiertrace._advisor.recorder.Window` turned into `Suggestion` objects.

Pure functions over the recorder's read-only snapshot: `l1_info` (the observed L1 latency and
cost), one function per rule (`pre_cache`, `cost_share`, `l1_hit_rate`, `wasted_fills`,
`top_patterns`) and `findings`, which lists them all in report order. The knobs the rules read
(``min_accesses``, ``l1_hit_rate_target``, ``fill_grace_s``) travel in `Thresholds`, set by
`tiertrace._advisor.advisor.Advisor`. What the rules mean and how their numbers are made is in
the guide of `tiertrace._advisor.advisor`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tiertrace._advisor.recorder import PatternView, TierView, Window
from tiertrace._advisor.whatif import fmt_ttl, target_ttl
from tiertrace._contract.targets import CACHE_EFFECTIVENESS

_DAY = 86_400.0
_TOP_PATTERNS = 5
_COST_SHARE_GAP = 0.25


# the fields of a suggestion that snapshots, reports and JSON carry (never `key`)
SUGGESTION_FIELDS = (
    "kind",
    "pattern",
    "tier",
    "message",
    "accesses",
    "ttl_s",
    "latency_savings_s_per_day",
    "cost_savings_usd_per_day",
)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One advisor finding; ``kind`` says which rule produced it."""

    kind: str  # pre-cache | cost-share | l1-hit-rate | ttl | wasted-fills | top-latency | top-cost
    pattern: str  # template or fingerprint ("*" when about a whole tier); never a raw key
    tier: str  # tier the finding is about (for pre-cache: the tier serving it today)
    message: str  # one sentence for people
    accesses: int = 0
    evidence: Mapping[str, float] = field(default_factory=dict, hash=False)  # numbers behind it
    ttl_s: float | None = None
    latency_savings_s_per_day: float = 0.0
    cost_savings_usd_per_day: float = 0.0
    key: str | None = None  # the single hot key, in process only: never export it


class Thresholds(NamedTuple):
    """The knobs of the rules (see `tiertrace._advisor.advisor.Advisor`)."""

    min_accesses: int
    l1_hit_rate_target: float
    fill_grace_s: float  # a fill younger than this is not yet counted as wasted
    cache_effectiveness_target: float = CACHE_EFFECTIVENESS.value


class L1Info(NamedTuple):
    name: str
    hit_latency_s: float  # observed mean L1 hit latency (else mean L1 read latency, else 0)
    access_cost: float  # observed mean cost of one L1 access


def l1_info(w: Window) -> L1Info:
    """The busiest level-1 tier of ``w`` with its observed hit latency and access cost."""
    best = max(
        ((t.totals[0], name) for name, t in w.tiers.items() if t.level == 1 and t.totals[0]),
        default=None,
    )
    if best is None:
        names = sorted(k for k, t in w.served.items() if t.level == 1)
        return L1Info(names[0] if names else "L1", 0.0, 0.0)
    tot = w.tiers[best[1]].totals  # accesses, latency, cost, reads, read lat, hits, hit lat
    lat = tot[6] / tot[5] if tot[5] else (tot[4] / tot[3] if tot[3] else 0.0)
    return L1Info(best[1], lat, tot[2] / tot[0])


def findings(
    w: Window, th: Thresholds, ttl_curve: Sequence[Mapping[str, Any]] = ()
) -> list[Suggestion]:
    """Every finding of ``w``: pre-cache first (biggest savings first), then cost-share,
    l1-hit-rate, ttl (from ``ttl_curve``, the what-if's rows), wasted-fills, top-latency and
    top-cost."""
    l1 = l1_info(w)
    return [
        *pre_cache(w, th, l1),
        *cost_share(w, th),
        *l1_hit_rate(w, th),
        *ttl_choice(ttl_curve, th, l1.name),
        *wasted_fills(w, th, l1),
        *top_patterns(w, 2, "latency"),
        *top_patterns(w, 3, "cost"),
    ]


def _main_tier(p: PatternView, served: Mapping[str, TierView], deep: bool) -> str:
    """The tier that served most lookups of ``p`` (only level >= 2 ones if ``deep``)."""
    ranked = sorted(
        (-n, k)
        for k, n in p.served.items()
        if k != "none" and (not deep or (k in served and served[k].level >= 2))
    )
    return ranked[0][1] if ranked else "none"


def pre_cache(w: Window, th: Thresholds, l1: L1Info | None = None) -> list[Suggestion]:
    """Patterns a cache would have absorbed, biggest latency (then cost) savings first."""
    l1 = l1_info(w) if l1 is None else l1
    now, window = w.now, w.window_s
    out = []
    for name, p in w.patterns.items():
        t = p.totals
        deep, rep = t[4], t[7]
        if rep < th.min_accesses or deep <= 0.0 or now - p.last_deep > window:
            continue
        span = max(now - max(p.first_deep, now - window), w.bucket_s)
        rate = rep / span  # reads a cache would have served, per second
        serve_lat, serve_cost = t[5] / deep, t[6] / deep
        lat_save = max(serve_lat - l1.hit_latency_s, 0.0) * rate * _DAY
        cost_save = max(serve_cost - l1.access_cost, 0.0) * rate * _DAY
        if lat_save <= 0.0 and cost_save <= 0.0:
            continue
        gap = t[8] / rep
        ttl = float(round(min(max(3.0 * gap, 1.0), 3600.0)))
        share, key = 0.0, None
        if p.top_key_reads is not None:
            share = min(p.top_key_reads / deep, 1.0)
            key = p.top_key if share >= 0.5 else None
        tier = _main_tier(p, w.served, True)
        msg = (
            f"Pre-cache {name} in {l1.name} (TTL {ttl:g} s): read {int(deep)} times in "
            f"{fmt_span(w.observed_s)} from {tier}, saves {_num(lat_save)} s and "
            f"${_num(cost_save)} per day"
        )
        evidence = {
            "deep_reads": deep,
            "repeat_reads": rep,
            "reads_per_s": rate,
            "span_s": span,
            "mean_interarrival_s": gap,
            "serving_latency_s": serve_lat,
            "l1_hit_latency_s": l1.hit_latency_s,
            "serving_cost_usd": serve_cost,
            "l1_access_cost_usd": l1.access_cost,
            "key_share": share,
        }
        out.append(
            Suggestion(
                "pre-cache", name, tier, msg, int(deep), evidence, ttl, lat_save, cost_save, key
            )
        )
    out.sort(
        key=lambda x: (
            -x.latency_savings_s_per_day,
            -x.cost_savings_usd_per_day,
            -x.accesses,
            x.pattern,
        )
    )
    return out


def cost_share(w: Window, th: Thresholds) -> list[Suggestion]:
    """Tiers whose share of cost is more than 25 points above their share of lookups."""
    cost = {k: t.totals[2] for k, t in w.tiers.items()}
    lookups = {k: t.totals[0] for k, t in w.served.items()}
    total_cost, total_lookups = sum(cost.values()), sum(lookups.values())
    if total_cost <= 0.0 or total_lookups < th.min_accesses:
        return []
    rows = []
    for name in sorted((set(cost) | set(lookups)) - {"none"}):
        cs, ls = cost.get(name, 0.0) / total_cost, lookups.get(name, 0.0) / total_lookups
        if cs - ls > _COST_SHARE_GAP:
            rows.append((cs - ls, name, cs, ls))
    rows.sort(key=lambda r: (-r[0], r[1]))
    return [
        Suggestion(
            "cost-share",
            "*",
            name,
            f"{name} serves {ls * 100:.0f} % of lookups and {cs * 100:.0f} % of cost",
            int(lookups.get(name, 0.0)),
            {
                "cost_share": cs,
                "lookup_share": ls,
                "cost_usd": cost.get(name, 0.0),
                "cost_usd_per_day": cost.get(name, 0.0) / w.span * _DAY,
                "lookups": lookups.get(name, 0.0),
            },
        )
        for _, name, cs, ls in rows
    ]


def l1_hit_rate(w: Window, th: Thresholds) -> list[Suggestion]:
    """Level-1 tiers hit less often than ``l1_hit_rate_target``, with the patterns that miss."""
    misses = sorted((-p.totals[10], k) for k, p in w.patterns.items() if p.totals[10] > 0.0)[:3]
    worst = ", ".join(f"{k} ({-m:.0f} misses)" for m, k in misses)
    target = th.l1_hit_rate_target
    out = []
    for name, tv in sorted(w.tiers.items()):
        t = tv.totals
        reads, hits = t[3], t[5]
        if tv.level != 1 or reads < th.min_accesses or hits / reads >= target:
            continue
        rate = hits / reads
        msg = f"{name} hit rate is {rate * 100:.0f} % (target {target * 100:.0f} %)" + (
            f"; most misses: {worst}" if worst else ""
        )
        evidence = {
            "hit_rate": rate,
            "target": target,
            "reads": reads,
            "hits": hits,
            "top_pattern_misses": -misses[0][0] if misses else 0.0,
        }
        pattern = misses[0][1] if misses else "*"
        out.append(Suggestion("l1-hit-rate", pattern, name, msg, int(reads), evidence))
    return out


def ttl_choice(rows: Sequence[Mapping[str, Any]], th: Thresholds, tier: str) -> list[Suggestion]:
    """The smallest TTL whose predicted cache effectiveness beats the target, with what it
    saves per day; or, when none does, that the misses are cold keys. ``[]`` without a curve.

    ``rows`` are ``stats()["ttl_curve"]`` (see `tiertrace._advisor.whatif`).
    """
    if not rows:
        return []
    target = th.cache_effectiveness_target
    reach, best = target_ttl([dict(r) for r in rows], target)
    now = next((r for r in rows if r.get("observed")), None)
    today = (
        f"; today {now['cache_effectiveness'] * 100:.0f} % at TTL {fmt_ttl(now['ttl_s'])}"
        if now is not None
        else ""
    )
    sample = f"{rows[0]['sampled_keys']} sampled keys"
    if reach is None:
        assert best is not None
        msg = (
            f"No TTL reaches the {target * 100:.0f} % cache-effectiveness target: the misses "
            f"are cold keys (best: {best['cache_effectiveness'] * 100:.0f} % at TTL "
            f"{fmt_ttl(best['ttl_s'])}{today}; {sample})"
        )
        chosen, ttl, save = best, None, 0.0
    else:
        save = float(reach["savings_per_day_usd"])
        money = f"saves ${_num(save)}" if save >= 0 else f"costs ${_num(-save)} more"
        msg = (
            f"TTL {fmt_ttl(reach['ttl_s'])} is the smallest that reaches the "
            f"{target * 100:.0f} % cache-effectiveness target: predicted "
            f"{reach['cache_effectiveness'] * 100:.0f} % "
            f"({reach['cache_effectiveness_low'] * 100:.0f}–"
            f"{reach['cache_effectiveness_high'] * 100:.0f} %){today}; {money} per day "
            f"({sample})"
        )
        chosen, ttl = reach, float(reach["ttl_s"])
    evidence = {
        "predicted_cache_effectiveness": float(chosen["cache_effectiveness"]),
        "predicted_cache_effectiveness_low": float(chosen["cache_effectiveness_low"]),
        "predicted_cache_effectiveness_high": float(chosen["cache_effectiveness_high"]),
        "predicted_l1_hit_rate": float(chosen["l1_hit_rate"]),
        "predicted_cost_per_day_usd": float(chosen["cost_per_day_usd"]),
        "target": target,
        "sampled_keys": float(chosen["sampled_keys"]),
        "sampled_reads": float(chosen["sampled_reads"]),
    }
    if now is not None:
        evidence["observed_ttl_s"] = float(now["ttl_s"])
        evidence["predicted_at_observed_ttl"] = float(now["cache_effectiveness"])
    return [
        Suggestion(
            "ttl",
            "*",
            tier,
            msg,
            int(chosen["sampled_reads"]),
            evidence,
            ttl,
            0.0,
            save,
        )
    ]


def wasted_fills(w: Window, th: Thresholds, l1: L1Info | None = None) -> list[Suggestion]:
    """Patterns whose L1 fills were not read back (overwritten, pushed out or still unread)."""
    l1 = l1_info(w) if l1 is None else l1
    wasted: dict[str, float] = {k: p.totals[12] for k, p in w.patterns.items() if p.totals[12]}
    for pattern, n in w.unread_fills.items():  # still unread, old enough to call it
        wasted[pattern] = wasted.get(pattern, 0.0) + n
    out = []
    for pattern, n in sorted(wasted.items(), key=lambda r: (-r[1], r[0])):
        if n < th.min_accesses:
            continue
        entry = w.patterns.get(pattern)
        fills = max(entry.totals[11] if entry else 0.0, n)
        tier = entry.fill_tier if entry and entry.fill_tier else l1.name
        t = w.tiers.get(tier)
        unit = t.totals[2] / t.totals[0] if t and t.totals[0] else 0.0
        msg = (
            f"{n:.0f} of {fills:.0f} fills of {pattern} in {tier} were never read back "
            f"in {fmt_span(w.observed_s)}: fill on a second read or not at all"
        )
        evidence = {"wasted_fills": n, "fills": fills, "share": n / fills}
        cost_save = n / w.span * unit * _DAY
        out.append(
            Suggestion("wasted-fills", pattern, tier, msg, int(n), evidence, None, 0.0, cost_save)
        )
    return out


def _served_by_l1(p: PatternView, served: Mapping[str, TierView]) -> bool:
    """Whether most lookups of ``p`` are already served by a level-1 tier."""
    tier = _main_tier(p, served, False)
    return tier in served and served[tier].level == 1


def top_patterns(w: Window, field_: int, what: str) -> list[Suggestion]:
    """The top five patterns by pattern field ``field_`` (2: latency, 3: cost), as ``what``.

    Patterns mostly served by level 1 are left out: they are cached already, nothing to do.
    """
    rows = [
        (p.totals[field_], k, p)
        for k, p in w.patterns.items()
        if p.totals[1] and p.totals[field_] > 0 and not _served_by_l1(p, w.served)
    ]
    total = sum(r[0] for r in rows)
    rows.sort(key=lambda r: (-r[0], r[1]))
    out = []
    for rank, (val, name, p) in enumerate(rows[:_TOP_PATTERNS], 1):
        n, share, tier = p.totals[1], val / total, _main_tier(p, w.served, False)
        if what == "latency":
            amount, each = f"{_num(val)} s", f"{val / n * 1000:.1f} ms each"
        else:
            amount, each = f"${_num(val)}", f"${_num(val / n)} each"
        msg = (
            f"{name} is #{rank} by lookup {what}: {share * 100:.0f} % of it, {int(n)} "
            f"lookups, {amount} in {fmt_span(w.observed_s)} ({each}), mostly from {tier}"
        )
        evidence = {"total": val, "mean": val / n, "share": share, "lookups": n, "rank": rank}
        out.append(Suggestion(f"top-{what}", name, tier, msg, int(n), evidence))
    return out


def fmt_span(seconds: float) -> str:
    """An observed duration as people say it: ``0.0068`` → ``"7 ms"``, ``2.04`` → ``"2.0 s"``,
    ``98`` → ``"98 s"``, ``900`` → ``"15 min"``, ``3600`` → ``"1 h"``. Messages say the time
    actually observed (at most the window), never the configured window of a shorter run."""
    if seconds < 0.9995:
        return f"{max(seconds * 1000, 1):.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{round(seconds / 3600, 1):g} h"


def fmt_window(seconds: float) -> str:
    """A duration as people say it: ``3600`` → ``"1 h"``, ``900`` → ``"15 min"``."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 0.01 or x == 0:
        return f"{x:.2f}"
    return f"{x:.2g}"
