"""What-if for the L1 TTL: cache effectiveness and cost at other TTLs, from the traffic seen.

The question after "what should be cached?" is "what TTL gets us to the target, and what does
it save?". Changing the TTL, redeploying and waiting answers it slowly; replaying the reads
already observed answers it for every candidate TTL at once. `WhatIf` does that replay in the
style of SHARDS (Waldspurger et al., FAST '15): keys are sampled by a hash of the key, so a
small, stable subset of the key space stands for all of it, and for each sampled key it keeps
one simulated fill time per candidate TTL.

The model (what the figures assume; read them with it in mind):

* **Cache-aside, TTL from fill, not refreshed by reads.** A read of a key at time *t* hits
  under TTL *T* exactly when the key was last filled less than *T* before *t*; a simulated miss
  fills the key at that moment (the application reads the lower tiers and writes it back).
  ``GETEX … EX`` that refreshes on read, and write-through fills that precede any read, are not
  modelled: real writes (SET …) are not replayed as fills, because in cache-aside a write
  follows a miss that the simulation has already filled. ``DEL`` / ``UNLINK`` of a sampled key
  are replayed as invalidations (they happen whatever the TTL).
* **No eviction under memory pressure.** Only expiry removes a key; a TTL that needs more memory
  than Redis has will do worse than predicted.
* **Only this process's reads.** Reads of the same key by other processes count only when
  they are sampled here; another process filling a shared cache makes the real hit rate higher
  than predicted. The simulation starts cold at ``init()``: keys already cached then are
  misses in it.
* Multi-key reads (MGET, pipelines) count as one read of their first key.

Candidate TTLs: 15 "round" TTLs from 1 s to 1 day (`GRID`), plus the TTL observed on the
level-1 writes (``SET … EX/PX``, ``SETEX``, ``PSETEX``, ``GETEX EX``, ``EXPIRE``) when it is not
on the grid: the first such TTL seen gets a column of its own, simulated from the moment it
was seen; the most frequent TTL is reported as the observed one. At most 16 columns.

Sampling: a key is in the sample when ``crc32(key) < rate × 2³²`` (``whatif_sample_rate``,
default 1/64; 1 keeps every key). The same keys are always sampled, in every process. An
unsampled read costs one hash and one comparison. Memory is bounded by ``capacity`` sampled
keys (10,000 by default, ~200 bytes each): when a new key would exceed it, the rate is halved
and the keys above the new threshold leave the sample (the fixed-size variant of SHARDS); from
then on each sampled read weighs ``1 / rate`` in the counts, so earlier and later traffic keep
their proportions. Raw keys stay in this process: nothing here is exported.

Hot keys: with skewed popularity the few hottest keys carry much of the traffic, and whether
a hash sample catches one of them moves its hit rate a lot. As in SHARDS-adj, the difference
between the L1 reads observed and the reads the sample stands for (``unsampled_share`` in
``stats()["whatif"]``) is counted as hits under every TTL (an excess is taken off the hits):
``rate × (1 − share) + share``. With every key sampled it is 0.

Confidence: sampled keys fall into 32 groups by their hash; the 95 % band of a hit rate is
the ratio estimator ± 1.96 standard errors, the standard error taken from the spread between
the groups (the random-groups method: keys are the sampling unit, so a few very hot keys widen
the band as they should). It covers the sampling of keys, not the model's assumptions.

From hit rates to figures (`WhatIf.curve`, given `Figures` of the observed traffic):

* ``l1_hit_rate`` — the simulated hit rate of the sampled L1 reads under that TTL;
* ``cache_effectiveness`` — the hit rate times the share of lookups that start with an L1
  read, taken as ``min(1, L1 reads / lookups)`` (each lookup reads L1 once at most; bypass
  lookups that start deeper are never served by L1, whatever the TTL);
* ``cost_per_day_usd`` — the observed cost of all tiers plus the L1 misses added (or minus
  those avoided) times the observed cost of one miss (the cost of the deeper tiers and the L1
  fills over the observed L1 misses; before any miss, one access to the next tier plus one L1
  write), projected to a day over the time observed (DESIGN §5: nothing before the minimum
  window). Misses are counted from the replay at the TTL in use, so the curve costs exactly
  what was observed there and ``savings_per_day_usd`` is the replay's difference to it (with
  no TTL seen on the writes, from the misses observed);
* ``sampled_keys``, ``sampled_reads`` and the band (``*_low`` / ``*_high``).

Example (an injected clock stands in for time; every key sampled)::

    >>> now = [0.0]
    >>> w = WhatIf(sample_rate=1.0, clock=lambda: now[0])
    >>> for i in range(100):          # one key read every 3 s, TTL 10 s on its writes
    ...     now[0] = 3.0 * i
    ...     w.observe_read("user:1")
    >>> w.observe_ttl(10.0)
    >>> rates = dict(zip(w.ttls(), w.hit_rates()))
    >>> rates[2.0], rates[10.0], rates[60.0]
    (0.0, 0.75, 0.95)
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zlib import crc32

GRID: tuple[float, ...] = (
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    43200.0,
    86400.0,
)
"""The candidate TTLs (seconds): round values a person would set, about log-spaced."""

MAX_COLUMNS = len(GRID) + 1  # the grid and the observed TTL
GROUPS = 32
DEFAULT_RATE = 1.0 / 64.0
DEFAULT_CAPACITY = 10_000
_SPAN = float(2**32)
_NEVER = -math.inf
_Z95 = 1.959964
_DAY = 86_400.0
_MAX_TTL_VALUES = 64
_INVALIDATE = frozenset({"DEL", "UNLINK"})


@dataclass(frozen=True)
class Figures:
    """The observed traffic the curve is scaled and priced with (totals over ``elapsed_s``)."""

    elapsed_s: float  # time the projection divides by
    l1_reads: float  # L1 reads with a known hit
    l1_hits: float
    l1_accesses: float
    l1_cost_usd: float
    deep_cost_usd: float  # cost of the tiers below level 1
    total_cost_usd: float  # cost of every tier
    lookups: float
    next_tier_price_usd: float  # one access to the shallowest tier below L1
    l1_write_price_usd: float  # one L1 write


class WhatIf:
    """The sampled replay (see the module guide). Thread-safe; ``observe`` never raises."""

    def __init__(
        self,
        *,
        sample_rate: float = DEFAULT_RATE,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.rate = float(sample_rate)
        self.threshold = min(int(self.rate * _SPAN), 2**32)
        self.capacity = max(int(capacity), 1)
        self.clock = clock
        self.on_error = on_error
        self.lock = threading.Lock()
        self.columns: list[float] = list(GRID)
        self.active = len(GRID)  # columns simulated (the observed one is added when seen)
        self.keys: dict[str, array[float]] = {}  # key -> [hash, fill time per column]
        # per group, per column: weighted reads and hits; unweighted reads per column
        self.reads = [[0.0] * MAX_COLUMNS for _ in range(GROUPS)]
        self.hits = [[0.0] * MAX_COLUMNS for _ in range(GROUPS)]
        self.count = [0] * MAX_COLUMNS
        self.weight = 1.0 / self.rate
        self.halvings = 0
        self.ttl_seen: dict[float, int] = {}
        self.first_seen: float | None = None
        self.faults = 0

    # -- the hot path ------------------------------------------------------------------------
    def observe(self, key: str | None, read: bool, ttl_s: float | None, op: str) -> None:
        """One level-1 access: a read replays, a TTL-carrying write notes its TTL."""
        try:
            if ttl_s is not None:
                n = self.ttl_seen.get(ttl_s)
                if n is None:
                    self.observe_ttl(ttl_s)
                else:  # unlocked: a lost increment under threads only blurs the mode
                    self.ttl_seen[ttl_s] = n + 1
            if key is None or not (read or op in _INVALIDATE):
                return  # a write that cannot change the simulation: no hash
            h = crc32(key.encode())
            if h >= self.threshold:
                return  # not in the sample: one hash and one comparison
            if read:
                self._read(key, h)
            else:
                self._invalidate(key)
        except Exception as exc:
            self.faults += 1
            if self.on_error is not None:
                self.on_error(exc)

    def observe_read(self, key: str) -> None:
        """A level-1 read of ``key`` (whether it is sampled is decided here)."""
        self.observe(key, True, None, "GET")

    def observe_ttl(self, ttl_s: float) -> None:
        """A level-1 write that set a TTL of ``ttl_s`` seconds."""
        if not ttl_s > 0.0 or ttl_s == math.inf:
            return
        seen = self.ttl_seen
        with self.lock:
            if ttl_s in seen:
                seen[ttl_s] += 1
                return
            if len(seen) < _MAX_TTL_VALUES:
                seen[ttl_s] = 1
            if ttl_s not in self.columns and self.active == len(GRID):
                self.columns.append(ttl_s)  # a column of its own, simulated from now on
                self.active += 1

    def _read(self, key: str, h: int) -> None:
        now = self.clock()
        self.lock.acquire()
        try:
            if self.first_seen is None:
                self.first_seen = now
            entry = self.keys.get(key)
            if entry is None:
                if len(self.keys) >= self.capacity:
                    self._halve()
                    if h >= self.threshold:
                        return
                entry = array("d", [float(h)])
                entry.extend([_NEVER] * MAX_COLUMNS)
                self.keys[key] = entry
            g = h % GROUPS
            reads, hits, count, w = self.reads[g], self.hits[g], self.count, self.weight
            columns = self.columns
            for i in range(self.active):
                filled = entry[i + 1]
                if now - filled < columns[i]:
                    hits[i] += w
                else:
                    entry[i + 1] = now  # a miss: cache-aside fills it now
                reads[i] += w
                count[i] += 1
        finally:
            self.lock.release()

    def _invalidate(self, key: str) -> None:
        self.lock.acquire()
        try:
            entry = self.keys.get(key)
            if entry is not None:
                for i in range(1, len(entry)):
                    entry[i] = _NEVER
        finally:
            self.lock.release()

    def _halve(self) -> None:
        """Keep the sample under ``capacity``: halve the rate, drop keys above the threshold."""
        while len(self.keys) >= self.capacity and self.threshold > 1:
            self.threshold //= 2
            self.rate /= 2.0
            self.weight = 1.0 / self.rate
            self.halvings += 1
            limit = float(self.threshold)
            self.keys = {k: e for k, e in self.keys.items() if e[0] < limit}

    def sampled(self, key: str) -> bool:
        """Whether reads of ``key`` are in the sample (at the current rate)."""
        return crc32(key.encode()) < self.threshold

    # -- reading it --------------------------------------------------------------------------
    def ttls(self) -> list[float]:
        """The simulated TTLs, in column order (the grid, then the observed one if added)."""
        with self.lock:
            return self.columns[: self.active]

    def observed_ttl(self) -> float | None:
        """The TTL seen most often on level-1 writes, or None."""
        with self.lock:
            if not self.ttl_seen:
                return None
            return max(self.ttl_seen.items(), key=lambda kv: (kv[1], -kv[0]))[0]

    def hit_rates(self) -> list[float]:
        """The simulated L1 hit rate per column (0 before any sampled read)."""
        return [row[0] for row in self._rates()]

    def _rates(self) -> list[tuple[float, float, float, int, float]]:
        """Per column: hit rate, band low, band high, sampled reads, weighted reads."""
        with self.lock:
            active = self.active
            reads = [list(r[:active]) for r in self.reads]
            hits = [list(h[:active]) for h in self.hits]
            count = self.count[:active]
        out = []
        for i in range(active):
            r = sum(g[i] for g in reads)
            if r <= 0.0:
                out.append((0.0, 0.0, 1.0, 0, 0.0))
                continue
            hit = sum(g[i] for g in hits)
            p = hit / r
            filled = [(hits[g][i], reads[g][i]) for g in range(GROUPS) if reads[g][i] > 0.0]
            if len(filled) < 2:
                out.append((p, 0.0, 1.0, count[i], r))
                continue
            k = len(filled)
            var = k / (k - 1) * sum((hg - p * rg) ** 2 for hg, rg in filled) / (r * r)
            half = _Z95 * math.sqrt(var)
            out.append((p, max(0.0, p - half), min(1.0, p + half), count[i], r))
        return out

    def unsampled_share(self, l1_reads: float) -> float:
        """The share of ``l1_reads`` the weighted sample falls short of (negative: over).

        SHARDS-adj: with skewed key popularity a hash sample can miss (or catch) a few very
        hot keys, and their reads are what a small sample gets most wrong. The shortfall
        between the reads observed and the reads the sample stands for is counted as hits
        under every TTL (hot keys hit under any TTL); an excess is taken off the hits.
        """
        rates = self._rates()
        if not rates or l1_reads <= 0.0 or rates[0][4] <= 0.0:
            return 0.0
        return max(-1.0, min(1.0, 1.0 - rates[0][4] / l1_reads))

    def sampled_keys(self) -> int:
        with self.lock:
            return len(self.keys)

    def observed_s(self) -> float:
        """Seconds since the first sampled L1 read (0 before it)."""
        first = self.first_seen
        return 0.0 if first is None else max(self.clock() - first, 0.0)

    def curve(self, fig: Figures) -> list[dict[str, Any]]:
        """One row per TTL (ascending) with the figures of the module guide."""
        rows = []
        reach = min(1.0, fig.l1_reads / fig.lookups) if fig.lookups > 0 else 0.0
        misses_now = max(fig.l1_reads - fig.l1_hits, 0.0)
        if misses_now > 0:
            l1_writes = fig.l1_accesses - fig.l1_reads
            write_cost = fig.l1_cost_usd * l1_writes / fig.l1_accesses if fig.l1_accesses else 0
            per_miss = (fig.deep_cost_usd + write_cost) / misses_now
        else:
            per_miss = fig.next_tier_price_usd + fig.l1_write_price_usd
        per_day = _DAY / fig.elapsed_s if fig.elapsed_s > 0 else 0.0
        observed = self.observed_ttl()
        keys = self.sampled_keys()
        short = self.unsampled_share(fig.l1_reads)

        def adjust(rate: float) -> float:
            return min(1.0, max(0.0, rate * (1.0 - short) + short))

        ranked = sorted(zip(self.ttls(), self._rates(), strict=True), key=lambda r: r[0])
        # the cost is anchored at the TTL in use: there the curve costs what was observed, and
        # another TTL adds (or saves) the misses the replay finds between the two; without an
        # observed TTL, the replay's misses are compared with the misses observed
        at_observed = [adjust(r[0]) for ttl, r in ranked if ttl == observed]
        misses_ref = fig.l1_reads * (1.0 - at_observed[0]) if at_observed else misses_now

        def cost(rate: float) -> float:
            misses = fig.l1_reads * (1.0 - rate)
            return max(fig.total_cost_usd + (misses - misses_ref) * per_miss, 0.0) * per_day

        now_cost = fig.total_cost_usd * per_day
        for ttl, (raw, raw_low, raw_high, n, _w) in ranked:
            p, low, high = adjust(raw), adjust(raw_low), adjust(raw_high)
            rows.append(
                {
                    "ttl_s": ttl,
                    "l1_hit_rate": p,
                    "cache_effectiveness": p * reach,
                    "cost_per_day_usd": cost(p),
                    "savings_per_day_usd": now_cost - cost(p),
                    "sampled_keys": keys,
                    "sampled_reads": n,
                    "observed": ttl == observed,
                    "l1_hit_rate_low": low,
                    "l1_hit_rate_high": high,
                    "cache_effectiveness_low": low * reach,
                    "cache_effectiveness_high": high * reach,
                    "cost_per_day_usd_low": cost(high),
                    "cost_per_day_usd_high": cost(low),
                }
            )
        return rows

    def summary(self, fig: Figures | None, min_window_s: float) -> dict[str, Any]:
        """What ``stats()["whatif"]`` shows: state, sample, observed TTL, model, prices."""
        short = self.unsampled_share(fig.l1_reads) if fig is not None else 0.0
        observed = self.observed_s()
        reads = max(self.count[: self.active], default=0)
        if reads == 0:
            status = "no sampled reads"
        elif observed < min_window_s or fig is None:
            status = "collecting"
        else:
            status = "ready"
        return {
            "status": status,
            "sample_rate": self.rate,
            "sampled_keys": self.sampled_keys(),
            "sampled_reads": reads,
            "observed_ttl_s": self.observed_ttl(),
            "unsampled_share": short,
            "observed_s": observed,
            "min_window_s": min_window_s,
            "model": MODEL,
        }


MODEL = (
    "cache-aside; TTL from fill, not refreshed by reads; no eviction under memory pressure; "
    "only this process's reads (others' count only when sampled here); starts cold at init()"
)
"""The model's assumptions in one line (shown with every curve)."""


def target_ttl(
    rows: Sequence[dict[str, Any]], target: float
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The smallest-TTL row whose predicted cache effectiveness beats ``target`` (or None),
    and the row with the best predicted effectiveness (None without rows)."""
    best = max(rows, key=lambda r: (r["cache_effectiveness"], -r["ttl_s"]), default=None)
    for row in sorted(rows, key=lambda r: r["ttl_s"]):
        if row["cache_effectiveness"] > target:
            return row, best
    return None, best


def fmt_ttl(seconds: float) -> str:
    """A TTL as people write it: ``90`` → ``"90 s"``, ``3600`` → ``"1 h"``, ``86400`` → ``"1 d"``.

    >>> fmt_ttl(90), fmt_ttl(120), fmt_ttl(3600), fmt_ttl(86400), fmt_ttl(0.5)
    ('90 s', '2 min', '1 h', '1 d', '0.5 s')
    """
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
