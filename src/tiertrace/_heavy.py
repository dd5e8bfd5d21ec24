"""The recording side of the optimization advisor: bounded, time-windowed state.

`Recorder` is what `tiertrace._advisor.Advisor` builds on: ``observe_access`` and
``observe_lookup`` (the hot path, a few microseconds, never raising, one lock) update a
handful of bounded tables, and the advisor reads them to make its findings.

Two building blocks keep memory flat whatever the key space:

* `Ring` — sums of a few fields (count, latency, cost …) over a sliding window cut into
  time buckets (60 per window by default: one-minute resolution for a one-hour window). Only
  the current bucket is touched on the hot path; closed buckets live in a ring array that is
  allocated on first use and released once the window holds nothing again, so an idle entry
  costs a few hundred bytes and an old one decays to zero by itself.
* `KeyStat` — one exact key served from a deeper tier: a two-epoch sliding count (this
  window and the previous one, the previous weighted by how much of it still overlaps) and
  the time it was last read. Keys live in a dict of fixed capacity; when it is full,
  `prune_keys` keeps the busier half (by windowed count, then recency), a batch form of
  Misra-Gries: with ``N`` keyed reads in the window, a tracked key counted more than
  ``2 × N / capacity`` times is never among those dropped. A prune costs about 2 ms for
  10,000 keys and comes once per ``capacity / 2`` new keys.

Tables: accesses per tier, lookups per ``served_by``, patterns (at most
``pattern_capacity``), exact keys and unread L1 fills (each at most ``capacity``; an L1
read of a key removes its fill, a fill pushed out unread counts as wasted), tier names (at
most 64). Time is a bucket number ``b = int(now / bucket_width)``; a bucket is in
the window when ``b > now_bucket - buckets``.
"""

from __future__ import annotations

import contextlib
import threading
from array import array
from collections.abc import Callable
from typing import TypeVar

_MAX = 1e9  # latencies and costs outside [0, _MAX) (negative, NaN, inf) are ignored
_MAX_TIERS = 64


class Ring:
    """Windowed sums of ``width`` fields; field 0 is always the event count."""

    __slots__ = ("closed", "cur", "head", "last", "name", "ring")

    def __init__(self, name: str, width: int, b: int, now: float) -> None:
        self.name = name
        self.head = b  # bucket number of ``cur``
        self.cur = [0.0] * width  # the current bucket, updated in place on the hot path
        self.closed: list[float] | None = None  # sum of the closed buckets still in window
        self.ring: array[float] | None = None  # closed buckets, ``width`` doubles per slot
        self.last = now  # time of the last event

    def roll(self, b: int, nb: int) -> None:
        """Make bucket ``b`` current, expiring what fell out of the ``nb``-bucket window."""
        head = self.head
        gap = b - head
        if gap <= 0:
            return
        cur = self.cur
        width = len(cur)
        if gap >= nb:  # everything, the current bucket included, is out of the window
            self.ring = None
            self.closed = None
        else:
            ring = self.ring
            closed = self.closed
            if cur[0]:
                if ring is None or closed is None:
                    ring = self.ring = array("d", bytes(8 * width * nb))
                    closed = self.closed = [0.0] * width
                off = (head % nb) * width
                for i in range(width):
                    v = cur[i]
                    ring[off + i] = v
                    closed[i] += v
            if ring is not None and closed is not None:
                for k in range(head + 1, b + 1):  # slots of buckets k - nb: now expired
                    off = (k % nb) * width
                    if ring[off]:
                        for i in range(width):
                            closed[i] -= ring[off + i]
                            ring[off + i] = 0.0
                if closed[0] <= 0.0:  # window empty: free the ring, drop float residue
                    self.ring = None
                    self.closed = None
        self.cur = [0.0] * width
        self.head = b

    def totals(self, b: int, nb: int) -> list[float]:
        """The window sums as of bucket ``b`` (rolls the entry forward)."""
        if b > self.head:
            self.roll(b, nb)
        closed = self.closed
        if closed is None:
            return list(self.cur)
        return [c + v for c, v in zip(closed, self.cur, strict=True)]


class TierStat(Ring):
    """Windowed sums for one tier or one ``served_by`` value.

    Tier fields: 0 accesses, 1 latency, 2 cost, 3 reads with a known hit, 4 their latency,
    5 hits, 6 hit latency, 7 writes. ``served_by`` fields: 0 lookups, 1 latency, 2 cost.
    """

    __slots__ = ("level",)

    def __init__(self, name: str, level: int, width: int, b: int, now: float) -> None:
        super().__init__(name, width, b, now)
        self.level = level


class PatternStat(Ring):
    """Windowed sums for one query pattern, plus what the pre-cache rule needs.

    Fields: 0 events, 1 lookups, 2 lookup latency, 3 lookup cost, 4 lookups served from
    level >= 2 ("deep"), 5 their latency, 6 their cost, 7 deep repeat reads (key read
    before in the window), 8 sum of the gaps before those repeats, 9 L1 reads with a known
    hit, 10 L1 misses, 11 L1 writes (fills), 12 fills found wasted (overwritten or pushed
    out of tracking before any L1 read of their key).
    """

    __slots__ = ("fill_tier", "first_deep", "last_deep", "served", "top_key", "top_n")

    def __init__(self, name: str, width: int, b: int, now: float) -> None:
        super().__init__(name, width, b, now)
        self.served: dict[str, int] = {}  # served_by -> lookups (for the finding's tier)
        self.first_deep = now  # first deep-served read since the pattern was last idle
        self.last_deep = float("-inf")
        self.top_key: str | None = None  # busiest exact key, checked again when reporting
        self.top_n = 0.0
        self.fill_tier = ""  # tier of the last L1 write


class KeyStat:
    """One exact key served from level >= 2: two-epoch sliding count and last read."""

    __slots__ = ("cur", "ep", "last", "pattern", "prev")

    def __init__(self, pattern: str, ep: int, now: float) -> None:
        self.pattern = pattern
        self.ep = ep  # epoch (window-sized) of ``cur``
        self.cur = 1
        self.prev = 0
        self.last = now


R = TypeVar("R", bound=Ring)
T = TypeVar("T")


def key_count(e: KeyStat, ep: int, frac: float) -> float:
    """Estimated reads of ``e`` in the window ending ``frac`` of the way into epoch ``ep``."""
    if e.ep == ep:
        return e.cur + e.prev * (1.0 - frac)
    if e.ep == ep - 1:
        return e.cur * (1.0 - frac)
    return 0.0


def prune_keys(keys: dict[str, KeyStat], keep: int, ep: int, frac: float) -> dict[str, KeyStat]:
    """The ``keep`` busiest live keys of ``keys``; among equals, the newest."""
    w = 1.0 - frac
    scores = [
        e.cur + e.prev * w if e.ep == ep else (e.cur * w if e.ep == ep - 1 else 0.0)
        for e in keys.values()
    ]
    return _keep_top(keys, scores, keep)


def _keep_top(table: dict[str, T], scores: list[float], keep: int) -> dict[str, T]:
    """The entries of ``table`` with the ``keep`` highest positive scores (ties: newest)."""
    live = len(scores) - scores.count(0.0)
    thr = sorted(scores)[len(scores) - keep] if live > keep else 0.0
    out: dict[str, T] = {}
    ties: list[str] = []
    for (k, e), s in zip(table.items(), scores, strict=True):
        if s > thr:
            out[k] = e
        elif s == thr and s > 0.0:
            ties.append(k)
    if ties:
        for k in ties[max(len(ties) - (keep - len(out)), 0) :]:
            out[k] = table[k]
    return out


def prune_rings(table: dict[str, R], keep: int, b: int, nb: int) -> dict[str, R]:
    """The ``keep`` busiest entries of ``table`` by windowed events; among equals, the newest."""
    return _keep_top(table, [e.totals(b, nb)[0] for e in table.values()], keep)


class Fill:
    """An L1 write whose key has not been read at L1 since: when, and its pattern."""

    __slots__ = ("pattern", "t")

    def __init__(self, t: float, pattern: str) -> None:
        self.t = t
        self.pattern = pattern


def prune_fills(
    fills: dict[str, Fill], keep: int, oldest: float
) -> tuple[dict[str, Fill], list[Fill]]:
    """The ``keep`` newest fills written at or after ``oldest``, and the in-window rest."""
    kept = _keep_top(
        fills, [f.t - oldest + 1.0 if f.t >= oldest else 0.0 for f in fills.values()], keep
    )
    evicted = [f for k, f in fills.items() if f.t >= oldest and k not in kept]
    return kept, evicted


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
    ) -> None:
        if not window_s > 0 or capacity < 2 or pattern_capacity < 2 or buckets < 1:
            raise ValueError("window_s > 0, capacity >= 2, pattern_capacity >= 2, buckets >= 1")
        self.window_s = float(window_s)
        self.capacity = int(capacity)
        self.pattern_capacity = int(pattern_capacity)
        self._nb = int(buckets)
        self._width = self.window_s / self._nb
        self._inv_w = 1.0 / self._width
        self._clock = clock
        self._on_error = on_error
        self.faults = 0  # exceptions swallowed by observe_*
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

    def tracked(self) -> dict[str, int]:
        """How many keys, patterns, pending fills and tier names are held right now."""
        with self._lock:
            return {
                "keys": len(self._keys),
                "patterns": len(self._patterns),
                "fills": len(self._fills),
                "tiers": len(self._tiers) + len(self._served),
            }

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
            with self._lock:
                now = self._clock()
                b = int(now * self._inv_w)
                t = self._tiers.get(tier)
                if t is None or t.head != b:
                    t = self._tier(self._tiers, tier, level, 8, b, now)
                    if t is None:
                        return
                c = t.cur  # accesses, latency, cost, reads, read lat., hits, hit lat., writes
                c[0] += 1.0
                c[1] += latency_s
                c[2] += cost
                if is_write:
                    c[7] += 1.0
                elif hit is not None:
                    c[3] += 1.0
                    c[4] += latency_s
                    if hit:
                        c[5] += 1.0
                        c[6] += latency_s
                if level != 1 or type(pattern) is not str:
                    return
                p = self._patterns.get(pattern)
                if p is None or p.head != b:
                    p = self._pattern(pattern, b, now)
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
                            self._fills[key] = Fill(now, pattern)
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
            deep = served_level >= 2
            with self._lock:
                now = self._clock()
                b = int(now * self._inv_w)
                s = self._served.get(served_by)
                if s is None or s.head != b:
                    s = self._tier(self._served, served_by, served_level, 3, b, now)
                    if s is None:
                        return
                c = s.cur  # lookups, latency, cost
                c[0] += 1.0
                c[1] += latency_s
                c[2] += cost
                p = self._patterns.get(pattern)
                if p is None or p.head != b:
                    p = self._pattern(pattern, b, now)
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
                        self._keys[key] = KeyStat(pattern, ep, now)
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
        except Exception as exc:
            self._fault(exc)

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
