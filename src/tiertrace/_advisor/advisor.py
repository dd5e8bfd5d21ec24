"""The optimization advisor: pre-cache suggestions, query-pattern rankings, cost findings.

The advisor watches every tier access and every finished lookup and keeps, in bounded
memory, what is needed to answer three questions over a sliding window (one hour by
default):

* **What should be pre-cached?** A pattern whose lookups keep being served from a deeper
  tier (PostgreSQL, Chroma) although the same key was read before in the window is a
  pre-cache candidate once ``min_accesses`` such repeat reads were seen (for a single key:
  read more than ``min_accesses`` times). The suggestion carries a TTL (three times the
  mean time between two reads of the same key, 1 s … 1 h) and what caching it would save
  per day, from observed numbers only: the mean lookup latency and cost when served deeper,
  minus the observed L1 hit latency and L1 access cost, times the repeat-read rate.
* **Which query patterns cost most?** The top five patterns by total lookup latency and
  by total cost, among those not already served mostly by L1 (those are cached already).

Messages give the time actually observed ("read 50 times in 98 s"), at most the window:
the window's length is a limit, not what a short run saw.
* **Where is money wasted?** A tier whose share of cost is more than 25 points above its
  share of lookups served; L1 writes (fills) never read back at L1; an L1 hit rate under
  target, with the patterns that miss most.

Patterns are what you pass in (key templates such as ``user:{id}:profile``, SQL
fingerprints); they are what findings and metrics show. Exact keys are only kept in
process, to spot repeat reads, and appear in `Suggestion.key` (never in a pattern or
message), so nothing user-specific is exported.

Memory is flat: at most ``capacity`` keys (the busier half survives when full), as many
pending fills, 1,000 patterns and 64 tier names, each with per-minute buckets that expire.
The ``observe_*`` calls take a few microseconds, never raise, and are thread-safe.

Example (an injected clock stands in for time passing)::

    >>> from tiertrace._advisor.advisor import Advisor
    >>> now = [0.0]
    >>> adv = Advisor(clock=lambda: now[0])
    >>> for i in range(50):  # one profile read every 2 s: L1 miss, then PostgreSQL
    ...     now[0] = 2.0 * i
    ...     key = "user:42:profile"
    ...     adv.observe_access("redis", 1, "user:{id}:profile", key, 0.0003, 0.0001, False, False)
    ...     adv.observe_access("postgresql", 2, "SELECT profiles", None, 0.004, 0.001, True, False)
    ...     adv.observe_lookup("user:{id}:profile", key, "postgresql", 2, 0.0043, 0.0011)
    >>> best = adv.candidates()[0]
    >>> print(best.message)  # doctest: +NORMALIZE_WHITESPACE
    Pre-cache user:{id}:profile in redis (TTL 6 s): read 50 times in 98 s from postgresql,
    saves 173 s and $43.20 per day
    >>> best.accesses, best.ttl_s, best.key
    (50, 6.0, 'user:42:profile')
    >>> sorted({s.kind for s in adv.suggestions()})
    ['l1-hit-rate', 'pre-cache', 'top-cost', 'top-latency']

The figures: 49 repeat reads in 98 s: 0.5 reads/s × (4.3 ms − 0.3 ms observed L1
latency) × 86,400 s = 173 s, and 0.5 × ($0.0011 − $0.0001) × 86,400 = $43.20.

How the numbers are made (all over the window, all observed, no constants):

* *repeat reads* of a pattern: its lookups served from level >= 2 whose exact key had
  been read (and served deeper) before within the window; without a key, every such lookup
  of the pattern after its first. These are the reads a cache would have absorbed.
* *rate*: repeat reads divided by the time since the pattern's first deep read in the
  window (at least one bucket, so a burst is not extrapolated from milliseconds).
* *L1 latency*: the mean latency of observed L1 hits; before any L1 hit, the mean of
  observed L1 reads; with no L1 traffic at all, 0. *L1 cost*: mean cost of an L1 access.
* *TTL*: three times the mean gap before a repeat read, rounded, within 1 s … 3600 s.
* ``accesses`` of a pre-cache finding: lookups of the pattern served from level >= 2;
  ``key`` is set when one key made at least half of them.
* *wasted fills*: L1 writes whose key was not read at L1 afterwards, per pattern: fills
  overwritten or pushed out of tracking (more than ``capacity`` unread fills) before any
  read, plus fills still unread once older than ``fill_grace_s`` (one bucket); reported
  from ``min_accesses`` of them. Their ``cost_savings_usd_per_day`` is what those writes
  cost per day. *cost-share*: from ``min_accesses`` lookups.
  *l1-hit-rate*: from ``min_accesses`` L1 reads with a known hit.

How it is built: `Advisor` composes a `tiertrace._advisor.recorder.Recorder` (the bounded
tables and the ``observe_*`` hot path) with the rules of `tiertrace._advisor.findings`, which
read the recorder's read-only `tiertrace._advisor.recorder.Window` snapshot and never its
tables.

`Advisor.suggestions` lists pre-cache findings first (latency saved, then cost saved,
descending), then cost-share, l1-hit-rate, ttl (the smallest TTL that reaches the
cache-effectiveness target, from the TTL what-if of `tiertrace._advisor.whatif`),
wasted-fills, top-latency and top-cost;
`Advisor.candidates` gives the first ``top_n`` pre-cache findings: what the
``tiertrace.advisor.candidate.*`` gauges report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tiertrace._advisor.findings import Suggestion, Thresholds, findings, pre_cache
from tiertrace._advisor.recorder import Recorder, Totals, Window

__all__ = ["Advisor", "Suggestion"]


class Advisor:
    """Turns tier accesses and lookups into `Suggestion` objects (see the module guide).

    ``observe_access`` and ``observe_lookup`` feed it: they are the bound methods of its
    `Recorder`, so the per-access path has no extra call. `suggestions` and `candidates` take
    one `Window` of the recorder and apply the rules of `tiertrace._advisor.findings` to it
    outside the recorder's lock. Besides the documented knobs: ``buckets`` (time resolution
    of the window), ``pattern_capacity``, ``fill_grace_s`` (a fill younger than this is not
    yet counted as wasted; default one bucket), ``on_error`` (called with every exception
    ``observe_*`` swallowed; ``faults`` counts them) and ``source`` (the per-tier and
    per-``served_by`` counts since start, from tiertrace's metric aggregation; see
    `tiertrace._advisor.recorder.Totals`: with it, ``observe_*`` leave those sums to it).
    """

    def __init__(
        self,
        *,
        window_s: float = 3600.0,
        capacity: int = 10_000,
        min_accesses: int = 10,
        top_n: int = 20,
        l1_hit_rate_target: float = 0.40,
        cache_effectiveness_target: float = 0.70,
        clock: Callable[[], float] = time.monotonic,
        buckets: int = 60,
        pattern_capacity: int = 1_000,
        fill_grace_s: float | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        source: Totals | None = None,
    ) -> None:
        recorder = Recorder(
            window_s=window_s,
            capacity=capacity,
            clock=clock,
            buckets=buckets,
            pattern_capacity=pattern_capacity,
            on_error=on_error,
            source=source,
        )
        self.recorder = recorder
        self.observe_access = recorder.observe_access
        self.observe_lookup = recorder.observe_lookup
        self.observe_alone = recorder.observe_alone
        self.reset = recorder.reset
        self.tracked = recorder.tracked
        self.top_n = max(int(top_n), 0)
        self.thresholds = Thresholds(
            max(int(min_accesses), 1),
            float(l1_hit_rate_target),
            recorder.bucket_s if fill_grace_s is None else float(fill_grace_s),
            float(cache_effectiveness_target),
        )
        # the TTL what-if's rows (set by the runtime; see `tiertrace._advisor.whatif`)
        self.ttl_curve: Callable[[], Sequence[Mapping[str, Any]]] | None = None

    @property
    def faults(self) -> int:
        """Exceptions swallowed by ``observe_*`` so far."""
        return self.recorder.faults

    def window(self) -> Window:
        """The recorder's read-only snapshot the findings are made from."""
        return self.recorder.window(self.thresholds.fill_grace_s)

    def candidates(self) -> list[Suggestion]:
        """The ``top_n`` pre-cache candidates, biggest savings first (what gauges report)."""
        return pre_cache(self.window(), self.thresholds)[: self.top_n]

    def suggestions(self) -> list[Suggestion]:
        """Every current finding: pre-cache first (biggest savings first), then cost-share,
        l1-hit-rate, ttl, wasted-fills, top-latency and top-cost."""
        curve = self.ttl_curve() if self.ttl_curve is not None else ()
        return findings(self.window(), self.thresholds, curve)
