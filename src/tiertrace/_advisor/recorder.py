"""The recording side of the optimization advisor: ``observe_*`` into bounded tables.

`Recorder` owns the advisor's state. ``observe_access`` and ``observe_lookup`` (the hot path,
a few microseconds, never raising, one lock) update a handful of bounded tables (see
`tiertrace._advisor.tables`). Latencies and costs outside ``[0, 1e9)`` (negative, NaN, inf)
are ignored; an exception inside ``observe_*`` is counted in ``faults`` and passed to
``on_error``.

What the rules of `tiertrace._advisor.findings` need is read through `Recorder.window`: one
consistent, read-only `Window` of the tables, taken under the lock (window sums per tier, per
``served_by`` value and per pattern, and the unread fills). The tables themselves never leave
this module.

Tables: accesses per tier, lookups per ``served_by``, patterns (at most
``pattern_capacity``), exact keys and unread L1 fills (each at most ``capacity``; an L1
read of a key removes its fill, a fill pushed out unread counts as wasted), tier names (at
most 64). Time is a bucket number ``b = int(now / bucket_s)``; a bucket is in the window
when ``b > now_bucket - buckets``.

The per-tier and per-``served_by`` sums are what tiertrace's metric aggregation already
counts. Given a ``source`` (`Totals`: those counts since start, read from the aggregation
slots), the recorder keeps no copy of them per access: when the first observation of a new
time bucket arrives, and whenever a window is read, it moves what the aggregation counted since
the last such fold into the bucket of that fold. The hot path then touches only the patterns,
keys and fills. tiertrace counts an access or lookup in its slot just *after* the advisor
observed it, so the observation that starts a new bucket is not in what the fold moves into the
bucket before: it lands in its own, and windows stay exact. Accesses reach the advisor in
batches, up to a second after they happened, and are counted in their slot just after
(`tiertrace._lookups.grouping`): near a bucket boundary an access can so land in the bucket
after the one it happened in. Without a source (the advisor on its own) ``observe_*`` count
those sums themselves.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, TypeAlias

from tiertrace._advisor.tables import (
    Fill,
    KeyStat,
    PatternStat,
    TierStat,
    key_count,
    prune_fills,
    prune_keys,
    prune_rings,
)
from tiertrace._core.metrics import SERVED_TOTALS, TIER_TOTALS, Counted

_MAX = 1e9  # latencies and costs outside [0, _MAX) (negative, NaN, inf) are ignored
_MAX_TIERS = 64
TIER_FIELDS = len(TIER_TOTALS)  # the tier table's fields are the aggregation's totals
SERVED_FIELDS = len(SERVED_TOTALS)
# what the aggregation counted since start, per tier and per ``served_by`` value
Totals: TypeAlias = Callable[[], tuple[Counted, Counted]]


class TierView(NamedTuple):
    """Window sums of one tier or one ``served_by`` value (fields: see `TierStat`)."""

    level: int
    totals: Sequence[float]


class PatternView(NamedTuple):
    """Window sums of one query pattern (fields: see `PatternStat`) and its pre-cache facts."""

    totals: Sequence[float]
    served: Mapping[str, int]  # served_by -> lookups
    first_deep: float  # first deep-served read since the pattern was last idle
    last_deep: float  # last deep-served read (-inf: none yet)
    top_key: str | None  # busiest exact key served deep
    top_key_reads: float | None  # its estimated reads in the window; None once untracked
    fill_tier: str  # tier of the last L1 write ("" before any)


class Window(NamedTuple):
    """A read-only snapshot of everything `Recorder` holds, as of ``now``."""

    now: float
    window_s: float
    bucket_s: float
    span: float  # seconds of the window actually observed (at least one bucket)
    tiers: Mapping[str, TierView]  # accesses per tier
    served: Mapping[str, TierView]  # lookups per served_by value
    patterns: Mapping[str, PatternView]
    unread_fills: Mapping[str, float]  # pattern -> L1 fills still unread (see `window`)
    observed_s: float = 0.0  # seconds actually watched, up to window_s (what messages say)


class Recorder:
    """Bounded windowed tables fed by ``observe_access`` / ``observe_lookup``."""

    def __init__(
        self,
        *,
        window_s: float,
        capacity: int,
        clock: Callable[[], float],
        buckets: int,
        pattern_capacity: int,
        on_error: Callable[[BaseException], None] | None,
        source: Totals | None = None,
    ) -> None:
        if not window_s > 0 or capacity < 2 or pattern_capacity < 2 or buckets < 1:
            raise ValueError("window_s > 0, capacity >= 2, pattern_capacity >= 2, buckets >= 1")
        self.window_s = float(window_s)
        self.capacity = int(capacity)
        self.pattern_capacity = int(pattern_capacity)
        self.buckets = self._nb = int(buckets)
        self.bucket_s = self._width = self.window_s / self._nb
        self._inv_w = 1.0 / self._width
        self._clock = clock
        self._on_error = on_error
        self.faults = 0  # exceptions swallowed by observe_*
        self._source = source
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything observed so far."""
        with self._lock:
            self._tiers: dict[str, TierStat] = {}  # accesses per tier
            self._served: dict[str, TierStat] = {}  # lookups per served_by
            self._patterns: dict[str, PatternStat] = {}
            self._keys: dict[str, KeyStat] = {}  # exact keys served from level >= 2
            self._fills: dict[str, Fill] = {}  # L1 writes and whether they were read back
            self._start: float | None = None
            # with a source: its totals at the last fold, and that fold's bucket
            self._base: tuple[Counted, Counted] = ({}, {})
            self._head = -1
            if self._source is not None:
                self._base = self._source()

    def tracked(self) -> dict[str, int]:
        """How many keys, patterns, pending fills and tier names are held right now."""
        with self._lock:
            return {
                "keys": len(self._keys),
                "patterns": len(self._patterns),
                "fills": len(self._fills),
                "tiers": len(self._tiers) + len(self._served),
            }

    def window(self, unread_after_s: float) -> Window:
        """The tables as of now; ``unread_fills`` counts, per pattern, the L1 fills written
        in the window at least ``unread_after_s`` ago whose key was not read since."""
        with self._lock:
            now = self._clock()
            b = int(now * self._inv_w)
            if self._source is not None:
                self._fold(b, now)
            nb = self._nb
            ep, frac = b // nb, (b % nb) / nb
            tiers = {k: TierView(t.level, t.totals(b, nb)) for k, t in self._tiers.items()}
            served = {k: TierView(t.level, t.totals(b, nb)) for k, t in self._served.items()}
            keys = self._keys
            patterns = {}
            for k, p in self._patterns.items():
                e = keys.get(p.top_key) if p.top_key is not None else None
                patterns[k] = PatternView(
                    p.totals(b, nb),
                    dict(p.served),
                    p.first_deep,
                    p.last_deep,
                    p.top_key,
                    None if e is None else key_count(e, ep, frac),
                    p.fill_tier,
                )
            oldest, newest = now - self.window_s, now - unread_after_s
            unread: dict[str, float] = {}
            for f in self._fills.values():
                if oldest <= f.t <= newest:
                    unread[f.pattern] = unread.get(f.pattern, 0.0) + 1.0
            start = now if self._start is None else self._start
            observed = max(min(now - start, self.window_s), 0.0)
            span = max(observed, self._width)
            return Window(
                now, self.window_s, self._width, span, tiers, served, patterns, unread, observed
            )

    def observe_access(
        self,
        tier: str,
        level: int,
        pattern: str,
        key: str | None,
        latency_s: float,
        cost: float,
        hit: bool | None,
        is_write: bool,
    ) -> None:
        """Record one tier access (a read with ``hit`` True/False/None, or a write)."""
        try:
            if not (0.0 <= latency_s < _MAX and 0.0 <= cost < _MAX) or type(tier) is not str:
                return
            self._lock.acquire()
            try:
                now = self._clock()
                b = int(now * self._inv_w)
                if self._source is None:
                    self._count_access(now, b, tier, level, latency_s, cost, hit, is_write)
                elif b != self._head:
                    self._fold(b, now)
                if level != 1 or type(pattern) is not str:
                    return
                p = self._patterns.get(pattern)
                if p is None or p.head != b:
                    p = self._pattern(pattern, b, now)
                self._l1_access(p, now, b, tier, key, hit, is_write)
            finally:
                self._lock.release()
        except Exception as exc:
            self._fault(exc)

    def observe_lookup(
        self,
        pattern: str,
        key: str | None,
        served_by: str,
        served_level: int,
        latency_s: float,
        cost: float,
    ) -> None:
        """Record one finished lookup (``served_by`` "none" with ``served_level`` 0)."""
        try:
            if not (0.0 <= latency_s < _MAX and 0.0 <= cost < _MAX):
                return
            if type(pattern) is not str or type(served_by) is not str:
                return
            deep = served_level >= 2  # before any table is touched: a bad level changes nothing
            self._lock.acquire()
            try:
                now = self._clock()
                b = int(now * self._inv_w)
                if self._source is None:
                    self._count_lookup(now, b, served_by, served_level, latency_s, cost)
                elif b != self._head:
                    self._fold(b, now)
                p = self._patterns.get(pattern)
                if p is None or p.head != b:
                    p = self._pattern(pattern, b, now)
                self._lookup(p, now, b, key, served_by, deep, latency_s, cost)
            finally:
                self._lock.release()
        except Exception as exc:
            self._fault(exc)

    def observe_alone(
        self,
        tier: str,
        level: int,
        pattern: str,
        key: str | None,
        latency_s: float,
        cost: float,
        hit: bool | None,
    ) -> None:
        """A read that was a lookup of its own (an L1 hit, most of the traffic, or a lone
        read nothing joined): what `observe_access` and `observe_lookup` record for it, under
        one lock. The lookup was served by ``tier`` if the read hit, else by "none"."""
        try:
            if not (0.0 <= latency_s < _MAX and 0.0 <= cost < _MAX) or type(tier) is not str:
                return
            served_by = tier if hit else "none"
            lock = self._lock
            lock.acquire()  # not ``with``: twice the cost on the per-access path
            try:
                now = self._clock()
                b = int(now * self._inv_w)
                if self._source is None:
                    self._count_access(now, b, tier, level, latency_s, cost, hit, False)
                    self._count_lookup(now, b, served_by, level if hit else 0, latency_s, cost)
                elif b != self._head:
                    self._fold(b, now)
                if type(pattern) is not str:
                    return
                p = self._patterns.get(pattern)
                if p is None or p.head != b:
                    p = self._pattern(pattern, b, now)
                if level != 1:
                    self._lookup(
                        p, now, b, key, served_by, bool(hit) and level >= 2, latency_s, cost
                    )
                    return
                # an L1 read and its lookup, served at level 1 or by none (never deep): what
                # `_l1_access` and `_lookup` add for it, written out (this is every cache hit)
                p.last = now
                c = p.cur
                c[0] += 2.0  # two events: the read and the lookup
                c[1] += 1.0
                c[2] += latency_s
                c[3] += cost
                if hit is not None:
                    c[9] += 1.0
                    if not hit:
                        c[10] += 1.0
                srv = p.served
                srv[served_by] = srv.get(served_by, 0) + 1
                if type(key) is str:
                    self._fills.pop(key, None)  # read back: that fill was useful
            finally:
                lock.release()
        except Exception as exc:
            self._fault(exc)

    # -- the tables; every method below is called with the lock held --------------------------

    def _fold(self, b: int, now: float) -> None:
        """Move what the source counted since the last fold into the bucket of that fold, then
        make ``b`` the fold bucket (every observation in between came from that bucket: the
        first one of a later bucket folds)."""
        assert self._source is not None
        head = b if self._head < 0 else self._head
        counted = self._source()
        for table, now_counts, before, width in (
            (self._tiers, counted[0], self._base[0], TIER_FIELDS),
            (self._served, counted[1], self._base[1], SERVED_FIELDS),
        ):
            zero = (0.0,) * width
            for name, (level, values) in now_counts.items():
                was = before.get(name)
                old = zero if was is None else was[1]
                if values[0] <= old[0]:  # nothing new
                    continue
                t = self._tier(table, name, level, width, head, now)
                if t is not None:
                    cur = t.cur
                    for i in range(width):
                        cur[i] += values[i] - old[i]
        self._base = counted
        self._head = b

    def _count_access(
        self,
        now: float,
        b: int,
        tier: str,
        level: int,
        latency_s: float,
        cost: float,
        hit: bool | None,
        is_write: bool,
    ) -> None:
        # without a source only: the tier's sums
        t = self._tier(self._tiers, tier, level, TIER_FIELDS, b, now)
        if t is None:
            return
        c = t.cur  # accesses, latency, cost, reads, read lat., hits, hit lat.
        c[0] += 1.0
        c[1] += latency_s
        c[2] += cost
        if hit is not None and not is_write:
            c[3] += 1.0
            c[4] += latency_s
            if hit:
                c[5] += 1.0
                c[6] += latency_s

    def _count_lookup(
        self, now: float, b: int, served_by: str, level: int, latency_s: float, cost: float
    ) -> None:
        # without a source only: the ``served_by`` value's sums
        t = self._tier(self._served, served_by, level, SERVED_FIELDS, b, now)
        if t is None:
            return
        c = t.cur  # lookups, latency, cost
        c[0] += 1.0
        c[1] += latency_s
        c[2] += cost

    def _l1_access(
        self,
        p: PatternStat,
        now: float,
        b: int,
        tier: str,
        key: str | None,
        hit: bool | None,
        is_write: bool,
    ) -> None:
        # an L1 access of pattern ``p``: its reads and fills
        p.last = now
        pc = p.cur
        pc[0] += 1.0
        if is_write:
            pc[11] += 1.0
            p.fill_tier = tier
            if type(key) is str:
                f = self._fills.get(key)
                if f is None:
                    if len(self._fills) >= self.capacity:
                        self._evict_fills(now, b)
                    self._fills[key] = Fill(now, p.name)
                else:  # the previous fill was never read: overwritten, wasted
                    pc[12] += 1.0
                    f.t = now
            return
        if hit is not None:
            pc[9] += 1.0
            if not hit:
                pc[10] += 1.0
        if type(key) is str:
            self._fills.pop(key, None)  # read back: that fill was useful

    def _lookup(
        self,
        p: PatternStat,
        now: float,
        b: int,
        key: str | None,
        served_by: str,
        deep: bool,
        latency_s: float,
        cost: float,
    ) -> None:
        # a lookup of pattern ``p``; one served deep (level >= 2) also feeds the pre-cache figures
        p.last = now
        srv = p.served
        srv[served_by] = srv.get(served_by, 0) + 1
        c = p.cur  # layout: see PatternStat
        c[0] += 1.0
        c[1] += 1.0
        c[2] += latency_s
        c[3] += cost
        if not deep:
            return
        c[4] += 1.0
        c[5] += latency_s
        c[6] += cost
        window = self.window_s
        if now - p.last_deep > window:  # idle for a window: a fresh start
            p.first_deep = now
            p.top_key = None
            p.top_n = 0.0
        gap = -1.0
        if type(key) is str:
            ep = b // self._nb
            e = self._keys.get(key)
            if e is None:
                if len(self._keys) >= self.capacity:
                    frac = (b % self._nb) / self._nb
                    self._keys = prune_keys(self._keys, self.capacity // 2, ep, frac)
                self._keys[key] = KeyStat(p.name, ep, now)
                n = 1.0
            else:
                if e.ep < ep:
                    e.prev = e.cur if e.ep == ep - 1 else 0
                    e.cur = 0
                    e.ep = ep
                e.cur += 1
                n = float(e.cur + e.prev)
                if now - e.last <= window:
                    gap = now - e.last
                e.last = now
            if n > p.top_n or key == p.top_key:
                p.top_key = key
                p.top_n = n
        elif now - p.last_deep <= window:  # no key: the pattern is the unit
            gap = now - p.last_deep
        p.last_deep = now
        if gap >= 0.0:
            c[7] += 1.0
            c[8] += gap

    def _fault(self, exc: BaseException) -> None:
        self.faults += 1
        if self._on_error is not None:
            with contextlib.suppress(Exception):  # the hook must not break the caller either
                self._on_error(exc)

    def _evict_fills(self, now: float, b: int) -> None:
        """Make room: fills pushed out unread count as wasted for their pattern."""
        self._fills, evicted = prune_fills(self._fills, self.capacity // 2, now - self.window_s)
        for f in evicted:
            p = self._patterns.get(f.pattern)
            if p is not None:
                p.roll(b, self._nb)
                p.cur[0] += 1.0
                p.cur[12] += 1.0

    def _tier(
        self, table: dict[str, TierStat], name: str, level: int, width: int, b: int, now: float
    ) -> TierStat | None:
        if self._start is None:
            self._start = now
        t = table.get(name)
        if t is not None:
            t.roll(b, self._nb)
            return t
        if len(table) >= _MAX_TIERS:  # only misuse gets here: drop idle names, else ignore
            for k in [k for k, v in table.items() if v.totals(b, self._nb)[0] <= 0.0]:
                del table[k]
            if len(table) >= _MAX_TIERS:
                return None
        t = table[name] = TierStat(name, level if isinstance(level, int) else -1, width, b, now)
        return t

    def _pattern(self, name: str, b: int, now: float) -> PatternStat:
        p = self._patterns.get(name)
        if p is not None:
            p.roll(b, self._nb)
            return p
        if len(self._patterns) >= self.pattern_capacity:
            self._patterns = prune_rings(self._patterns, self.pattern_capacity // 2, b, self._nb)
        p = self._patterns[name] = PatternStat(name, 13, b, now)
        return p
