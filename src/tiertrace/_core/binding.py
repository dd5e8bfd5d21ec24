"""Which tier a client's traffic belongs to: global instrumentation, explicit binding, matching.

``tiertrace.init()`` instruments every client of every installed library (``instrument()`` on
each instrumentor). To instrument one client only, or to pin it to a tier regardless of
``match`` rules, bind it::

    from tiertrace import RedisInstrumentor
    RedisInstrumentor().instrument_client(client, tier="session-cache")

A binding attaches to the object that pipelines, cursors and pooled connections share (a
redis-py connection pool, a psycopg connection or pool, a Chroma collection), so everything made
from the bound client is covered. ``uninstrument_client(client)`` removes the binding; while global
instrumentation is on, the client is then excluded from it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tiertrace._core.errors import ConfigError
from tiertrace._core.tiers import DEFAULT_TIERS, Tier, TierMap

ATTR = "_tiertrace_tier"
EXCLUDED = object()  # binding that opts a client out of global instrumentation
MATCH = object()  # binding that instruments a client and resolves its tier by `match`


class Tiers:
    """The tiers in force (defaults until init() says otherwise) and per-system maps."""

    def __init__(self, tiers: Sequence[Tier] = DEFAULT_TIERS) -> None:
        self.set(tiers)

    def set(self, tiers: Sequence[Tier]) -> None:
        self.all = tuple(tiers)
        self.maps = {s: TierMap(self.all, s) for s in ("redis", "postgresql", "chroma")}

    def named(self, tier: str | Tier, system: str) -> Tier:
        """Turn a ``tier=`` argument into a Tier of ``system``; `ConfigError` when it can't."""
        if isinstance(tier, Tier):
            if tier.system != system:
                raise ConfigError(f"tier {tier.name!r} is a {tier.system} tier, not {system}")
            return tier
        found = self.maps[system].by_name.get(tier)
        if found is None:
            names = [t.name for t in self.all if t.system == system]
            raise ConfigError(f"tier={tier!r} is not configured; {system} tiers: {names}")
        if found.system != system:
            raise ConfigError(f"tier {tier!r} is a {found.system} tier, not {system}")
        return found


TIERS = Tiers()


class Switch:
    """Global on/off of one instrumentor, plus a lock for patching."""

    def __init__(self) -> None:
        self.all = False
        self.patched = False
        self.lock = threading.Lock()


def bind(target: Any, tier: Tier | object) -> None:
    """Attach a tier (or `EXCLUDED`) to the shared object of a client."""
    try:
        setattr(target, ATTR, tier)
    except (AttributeError, TypeError):
        raise ConfigError(
            f"cannot bind a tier to {type(target).__name__}; pass the client object itself"
        ) from None


def unbind(target: Any, exclude: bool) -> None:
    """Remove a binding; with ``exclude`` opt the client out of global instrumentation."""
    if exclude:
        bind(target, EXCLUDED)
    elif hasattr(target, ATTR):
        delattr(target, ATTR)


def tier_of(bound: Any, switch: Switch, system: str, subjects: Sequence[str]) -> Tier | None:
    """The tier of one call: its client's binding, else (under global instrumentation) the
    first tier of ``system`` whose ``match`` takes one of ``subjects`` (key, tables, collection).
    """
    if bound is not None and bound is not MATCH:
        return None if bound is EXCLUDED else bound
    if bound is None and not switch.all:
        return None
    tiers = TIERS.maps[system]
    return tiers.only or tiers.resolve_any(subjects)
