"""Bounded, time-windowed tables for the optimization advisor.

`tiertrace._advisor.recorder.Recorder` keeps its state in these and is the only module that
touches them; the rules see them through the recorder's read-only ``Window``. Two building
blocks keep memory flat whatever the key space:

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

`TierStat` and `PatternStat` are the `Ring` entries for tiers and query patterns; `Fill` is
an L1 write not read back yet. `prune_rings` and `prune_fills` bound their tables the same
way `prune_keys` bounds the keys. Time is a bucket number ``b = int(now / bucket_width)``; a
bucket is in the window when ``b > now_bucket - buckets``.
"""

from __future__ import annotations

from array import array
from typing import TypeVar


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
    5 hits, 6 hit latency. ``served_by`` fields: 0 lookups, 1 latency, 2 cost.
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
