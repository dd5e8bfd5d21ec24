"""Tiers: which store is L1, L2 and L3, what an access costs, and which traffic counts.

A bare ``tiertrace.init()`` uses the three default tiers of a memory stack:

=============  =====  ===================  =======================
name           level  ``db.system.name``   cost per access (USD)
=============  =====  ===================  =======================
``redis``      1      ``redis``            0.0001
``postgresql`` 2      ``postgresql``       0.001
``chroma``     3      ``chroma``           0.01
=============  =====  ===================  =======================

Pass your own to change costs or to split one store into several tiers::

    from tiertrace import Tier, init

    init(tiers=[
        Tier("session-cache", 1, "redis", 0.00005, match=["session:*"]),
        Tier("redis", 1, "redis", 0.0001),            # every other Redis key
        Tier("postgresql", 2, "postgresql", 0.001, match=["memories", "facts"]),
        Tier("semantic", 3, "chroma", 0.01, hit_distance=0.35),
    ])

``match`` narrows which traffic of a client belongs to the tier:

* Redis: key prefixes (``"user:"``) or glob patterns (``"user:*:profile"``);
* PostgreSQL: table names (a statement belongs to the tier when it touches one of them);
* Chroma: collection names (globs allowed).

Tiers of one system are tried in order of level and then of declaration; a tier without
``match`` takes whatever no other tier of its system matched. Traffic that matches no tier is
left alone: no span, no metric. Two tiers may share a level only when they are on the same
system (two Redis prefixes at L1, say).

``hit_distance`` (Chroma) makes a query whose best distance is above the threshold a miss:
the semantic-cache case. ``cost_per_operation`` overrides the cost for some operations
(``{"query": 0.02, "add": 0.005}``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tiertrace._core.errors import ConfigError

SYSTEMS = ("redis", "postgresql", "chroma")


@dataclass(frozen=True)
class Tier:
    """One tier of the memory stack: a store, its level, its price, and which traffic is its.

    Args:
        name: the tier's name, as it appears in ``tiertrace.tier``, ``served_by`` and
            `tiertrace.stats` (``"redis"``, ``"session-cache"``).
        level: 1 is asked first (the cache), then 2, 3 …; a lookup served by level 1 is a
            cache hit. Tiers on different systems need different levels.
        system: ``"redis"``, ``"postgresql"`` or ``"chroma"``.
        cost_per_access: USD charged for one access (your price; the defaults are
            placeholders).
        match: which traffic of the system belongs to this tier: Redis key prefixes or glob
            patterns, PostgreSQL table names, Chroma collection names (globs allowed). None
            takes whatever no other tier of the system matched; traffic that matches no tier
            is left alone (no span, no metric).
        hit_distance: Chroma only: a ``query`` whose best distance is above this is a miss
            (the semantic-cache case).
        cost_per_operation: prices by operation (``db.operation.name``), e.g.
            ``{"query": 0.02, "upsert": 0.005}``; other operations cost ``cost_per_access``.

    Example:
        ```python
        tiertrace.init(tiers=[
            Tier("session-cache", 1, "redis", 0.00005, match=["session:*"]),
            Tier("redis", 1, "redis", 0.0001),
            Tier("postgresql", 2, "postgresql", 0.001, match=["memories", "facts"]),
            Tier("semantic", 3, "chroma", 0.01, hit_distance=0.35),
        ])
        ```

    Raises:
        ConfigError: here, when a ``match`` pattern is empty or not a string; from
            `tiertrace.init`, when a tier is invalid (name, level, system, a negative price …).
    """

    name: str
    level: int
    system: str
    cost_per_access: float
    match: str | Sequence[str] | None = None
    hit_distance: float | None = None
    cost_per_operation: Mapping[str, float] | None = None
    _matchers: tuple[re.Pattern[str], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        patterns: Sequence[str] = (
            ()
            if self.match is None
            else (self.match,)
            if isinstance(self.match, str)
            else self.match
        )
        object.__setattr__(self, "_matchers", tuple(_compile(p, self.system) for p in patterns))

    def cost(self, operation: str) -> float:
        """Cost in USD of one access with this operation.

        Args:
            operation: the ``db.operation.name`` of the access (``"GET"``, ``"SELECT"``,
                ``"query"``).

        Returns:
            ``cost_per_operation[operation]`` if given, else ``cost_per_access``.
        """
        if self.cost_per_operation:
            return float(self.cost_per_operation.get(operation, self.cost_per_access))
        return float(self.cost_per_access)

    def matches(self, subject: str) -> bool:
        """Whether ``subject`` (a Redis key, a table, a collection) belongs to this tier.

        Args:
            subject: a Redis key, a PostgreSQL table name or a Chroma collection name.

        Returns:
            True when the tier has no ``match`` or one of its patterns matches.
        """
        if not self._matchers:
            return True
        return any(m.match(subject) for m in self._matchers)


def _compile(pattern: object, system: str) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"Tier match {pattern!r} must be a non-empty string")
    if any(c in pattern for c in "*?["):
        return re.compile(fnmatch.translate(pattern), re.IGNORECASE if system != "redis" else 0)
    if system == "redis":  # a plain Redis pattern is a key prefix
        return re.compile(re.escape(pattern))
    return re.compile(re.escape(pattern) + r"\Z", re.IGNORECASE)


DEFAULT_TIERS = (
    Tier("redis", 1, "redis", 0.0001),
    Tier("postgresql", 2, "postgresql", 0.001),
    Tier("chroma", 3, "chroma", 0.01),
)


def validate_tiers(tiers: object) -> tuple[Tier, ...]:
    """Check a tier list; raise `ConfigError` that says what to fix."""
    if isinstance(tiers, (str, bytes)) or not isinstance(tiers, Sequence) or not tiers:
        raise ConfigError("tiers must be a non-empty list of tiertrace.Tier")
    seen: dict[str, Tier] = {}
    levels: dict[int, str] = {}
    for tier in tiers:
        if not isinstance(tier, Tier):
            raise ConfigError(f"tiers: {tier!r} is not a tiertrace.Tier")
        if not tier.name or not isinstance(tier.name, str):
            raise ConfigError("tiers: every tier needs a non-empty name")
        if tier.name in seen:
            raise ConfigError(
                f"tiers: duplicate tier name {tier.name!r}; give each tier its own name"
            )
        if tier.system not in SYSTEMS:
            raise ConfigError(
                f"tiers: tier {tier.name!r} has system {tier.system!r}; use one of {SYSTEMS}"
            )
        if isinstance(tier.level, bool) or not isinstance(tier.level, int) or tier.level < 1:
            raise ConfigError(f"tiers: tier {tier.name!r} level must be an integer >= 1")
        other = levels.get(tier.level)
        if other is not None and seen[other].system != tier.system:
            raise ConfigError(
                f"tiers: duplicate level {tier.level} ({other!r} and {tier.name!r}); "
                "tiers on different systems need different levels"
            )
        costs = [tier.cost_per_access, *(tier.cost_per_operation or {}).values()]
        for cost in costs:
            if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not cost >= 0:
                raise ConfigError(
                    f"tiers: tier {tier.name!r} has cost {cost!r}; costs must be numbers >= 0"
                )
        if tier.hit_distance is not None and not (
            isinstance(tier.hit_distance, (int, float))
            and not isinstance(tier.hit_distance, bool)
            and tier.hit_distance >= 0
        ):
            raise ConfigError(f"tiers: tier {tier.name!r} hit_distance must be a number >= 0")
        seen[tier.name] = tier
        levels.setdefault(tier.level, tier.name)
    return tuple(tiers)


class TierMap:
    """Resolves traffic of one system to its tier (fast path for one catch-all tier)."""

    __slots__ = ("by_name", "only", "ordered")

    def __init__(self, tiers: Sequence[Tier], system: str) -> None:
        mine = [t for t in tiers if t.system == system]
        # tiers with a match first (in level order), catch-alls last
        self.ordered = tuple(sorted(mine, key=lambda t: (not t._matchers, t.level)))
        self.only = self.ordered[0] if len(mine) == 1 and not mine[0]._matchers else None
        self.by_name = {t.name: t for t in tiers}

    def resolve(self, subject: str | None) -> Tier | None:
        """The tier ``subject`` belongs to, or None when no tier of this system matches it."""
        if self.only is not None:
            return self.only
        for tier in self.ordered:
            if not tier._matchers or (subject is not None and tier.matches(subject)):
                return tier
        return None

    def resolve_any(self, subjects: Sequence[str]) -> Tier | None:
        """The first tier that one of ``subjects`` (tables of a statement) belongs to."""
        if self.only is not None:
            return self.only
        for tier in self.ordered:
            if not tier._matchers or any(tier.matches(s) for s in subjects):
                return tier
        return None
