"""The advisor's rules: one window snapshot of the recorded tables, turned into findings.

`Findings` adds to `tiertrace._advisor.recorder.Recorder` what `tiertrace._advisor.advisor.Advisor`
reports: a snapshot of the window (`_Snap`, with the observed L1 latency and cost) and one
method per rule (pre-cache, cost-share, l1-hit-rate, wasted-fills, top-latency, top-cost),
each giving `Suggestion` objects. What the rules mean and how their numbers are made is
in the guide of `tiertrace._advisor.advisor`; the knobs they read (``min_accesses``,
``l1_hit_rate_target``, ``fill_grace_s``) are set by `Advisor`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from tiertrace._advisor.recorder import Recorder
from tiertrace._advisor.tables import PatternStat, key_count

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

    kind: str  # pre-cache | cost-share | l1-hit-rate | wasted-fills | top-latency | top-cost
    pattern: str  # template or fingerprint ("*" when about a whole tier); never a raw key
    tier: str  # tier the finding is about (for pre-cache: the tier serving it today)
    message: str  # one sentence for people
    accesses: int = 0
    evidence: Mapping[str, float] = field(default_factory=dict, hash=False)  # numbers behind it
    ttl_s: float | None = None
    latency_savings_s_per_day: float = 0.0
    cost_savings_usd_per_day: float = 0.0
    key: str | None = None  # the single hot key, in process only: never export it


class L1Info(NamedTuple):
    name: str
    hit_latency_s: float  # observed mean L1 hit latency (else mean L1 read latency, else 0)
    access_cost: float  # observed mean cost of one L1 access


class _Snap(NamedTuple):
    now: float
    span: float  # seconds of the window actually observed (at least one bucket)
    tiers: dict[str, tuple[int, list[float]]]  # name -> (level, totals)
    served: dict[str, tuple[int, list[float]]]
    patterns: dict[str, tuple[PatternStat, list[float]]]
    l1: L1Info


class Findings(Recorder):
    """The rules of `Advisor` over the tables of `Recorder` (call them with the lock held)."""

    min_accesses: int
    l1_hit_rate_target: float
    fill_grace_s: float

    # -- one window snapshot --------------------------------------------------------------

    def _snap(self) -> _Snap:
        now = self._clock()
        b = int(now * self._inv_w)
        nb = self._nb
        tiers = {k: (t.level, t.totals(b, nb)) for k, t in self._tiers.items()}
        served = {k: (t.level, t.totals(b, nb)) for k, t in self._served.items()}
        patterns = {k: (p, p.totals(b, nb)) for k, p in self._patterns.items()}
        start = now if self._start is None else self._start
        span = max(min(now - start, self.window_s), self._width)
        best = max(
            ((tot[0], name) for name, (level, tot) in tiers.items() if level == 1 and tot[0]),
            default=None,
        )
        if best is None:
            names = sorted(k for k, (level, _) in served.items() if level == 1)
            l1 = L1Info(names[0] if names else "L1", 0.0, 0.0)
        else:
            tot = tiers[best[1]][1]  # accesses, latency, cost, reads, read lat, hits, hit lat
            lat = tot[6] / tot[5] if tot[5] else (tot[4] / tot[3] if tot[3] else 0.0)
            l1 = L1Info(best[1], lat, tot[2] / tot[0])
        return _Snap(now, span, tiers, served, patterns, l1)

    @staticmethod
    def _main_tier(
        p: PatternStat, served: Mapping[str, tuple[int, list[float]]], deep: bool
    ) -> str:
        """The tier that served most lookups of ``p`` (only level >= 2 ones if ``deep``)."""
        ranked = sorted(
            (-n, k)
            for k, n in p.served.items()
            if k != "none" and (not deep or served.get(k, (-1, []))[0] >= 2)
        )
        return ranked[0][1] if ranked else "none"

    # -- the rules ------------------------------------------------------------------------

    def _pre_cache(self, s: _Snap) -> list[Suggestion]:
        now, l1, window = s.now, s.l1, self.window_s
        b = int(now * self._inv_w)
        ep, frac = b // self._nb, (b % self._nb) / self._nb
        out = []
        for name, (p, t) in s.patterns.items():
            deep, rep = t[4], t[7]
            if rep < self.min_accesses or deep <= 0.0 or now - p.last_deep > window:
                continue
            span = max(now - max(p.first_deep, now - window), self._width)
            rate = rep / span  # reads a cache would have served, per second
            serve_lat, serve_cost = t[5] / deep, t[6] / deep
            lat_save = max(serve_lat - l1.hit_latency_s, 0.0) * rate * _DAY
            cost_save = max(serve_cost - l1.access_cost, 0.0) * rate * _DAY
            if lat_save <= 0.0 and cost_save <= 0.0:
                continue
            gap = t[8] / rep
            ttl = float(round(min(max(3.0 * gap, 1.0), 3600.0)))
            share, key = 0.0, None
            e = self._keys.get(p.top_key) if p.top_key is not None else None
            if e is not None:
                share = min(key_count(e, ep, frac) / deep, 1.0)
                key = p.top_key if share >= 0.5 else None
            tier = self._main_tier(p, s.served, True)
            msg = (
                f"Pre-cache {name} in {l1.name} (TTL {ttl:g} s): read {int(deep)} times in "
                f"{fmt_window(window)} from {tier}, saves {_num(lat_save)} s and "
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

    def _cost_share(self, s: _Snap) -> list[Suggestion]:
        cost = {k: tot[2] for k, (_, tot) in s.tiers.items()}
        lookups = {k: tot[0] for k, (_, tot) in s.served.items()}
        total_cost, total_lookups = sum(cost.values()), sum(lookups.values())
        if total_cost <= 0.0 or total_lookups < self.min_accesses:
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
                    "cost_usd_per_day": cost.get(name, 0.0) / s.span * _DAY,
                    "lookups": lookups.get(name, 0.0),
                },
            )
            for _, name, cs, ls in rows
        ]

    def _l1_hit_rate(self, s: _Snap) -> list[Suggestion]:
        misses = sorted((-t[10], k) for k, (_, t) in s.patterns.items() if t[10] > 0.0)[:3]
        worst = ", ".join(f"{k} ({-m:.0f} misses)" for m, k in misses)
        out = []
        for name, (level, t) in sorted(s.tiers.items()):
            reads, hits = t[3], t[5]
            if level != 1 or reads < self.min_accesses or hits / reads >= self.l1_hit_rate_target:
                continue
            rate = hits / reads
            msg = (
                f"{name} hit rate is {rate * 100:.0f} % (target "
                f"{self.l1_hit_rate_target * 100:.0f} %)"
                + (f"; most misses: {worst}" if worst else "")
            )
            evidence = {
                "hit_rate": rate,
                "target": self.l1_hit_rate_target,
                "reads": reads,
                "hits": hits,
                "top_pattern_misses": -misses[0][0] if misses else 0.0,
            }
            pattern = misses[0][1] if misses else "*"
            out.append(Suggestion("l1-hit-rate", pattern, name, msg, int(reads), evidence))
        return out

    def _wasted_fills(self, s: _Snap) -> list[Suggestion]:
        oldest, newest = s.now - self.window_s, s.now - self.fill_grace_s
        wasted: dict[str, float] = {k: t[12] for k, (_, t) in s.patterns.items() if t[12]}
        for f in self._fills.values():  # still unread, old enough to call it
            if oldest <= f.t <= newest:
                wasted[f.pattern] = wasted.get(f.pattern, 0.0) + 1.0
        out = []
        for pattern, n in sorted(wasted.items(), key=lambda r: (-r[1], r[0])):
            if n < self.min_accesses:
                continue
            entry = s.patterns.get(pattern)
            fills = max(entry[1][11] if entry else 0.0, n)
            tier = entry[0].fill_tier if entry and entry[0].fill_tier else s.l1.name
            t = s.tiers.get(tier)
            unit = t[1][2] / t[1][0] if t and t[1][0] else 0.0
            msg = (
                f"{n:.0f} of {fills:.0f} fills of {pattern} in {tier} were never read back "
                f"within {fmt_window(self.window_s)}: fill on a second read or not at all"
            )
            evidence = {"wasted_fills": n, "fills": fills, "share": n / fills}
            cost_save = n / s.span * unit * _DAY
            out.append(
                Suggestion(
                    "wasted-fills", pattern, tier, msg, int(n), evidence, None, 0.0, cost_save
                )
            )
        return out

    def _top(self, s: _Snap, field_: int, what: str) -> list[Suggestion]:
        rows = [(t[field_], k, p, t) for k, (p, t) in s.patterns.items() if t[1] and t[field_] > 0]
        total = sum(r[0] for r in rows)
        rows.sort(key=lambda r: (-r[0], r[1]))
        out = []
        for rank, (val, name, p, t) in enumerate(rows[:_TOP_PATTERNS], 1):
            n, share, tier = t[1], val / total, self._main_tier(p, s.served, False)
            if what == "latency":
                amount, each = f"{_num(val)} s", f"{val / n * 1000:.1f} ms each"
            else:
                amount, each = f"${_num(val)}", f"${_num(val / n)} each"
            msg = (
                f"{name} is #{rank} by lookup {what}: {share * 100:.0f} % of it, {int(n)} "
                f"lookups, {amount} in {fmt_window(self.window_s)} ({each}), mostly from {tier}"
            )
            evidence = {"total": val, "mean": val / n, "share": share, "lookups": n, "rank": rank}
            out.append(Suggestion(f"top-{what}", name, tier, msg, int(n), evidence))
        return out


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
