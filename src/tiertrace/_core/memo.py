"""Bounded caches read on the per-call path: a plain dict, read with one ``dict.get``.

`remember` stores a value and empties the dict when it is full, so that a changing set of keys
(session keys, generated statements) is followed, without the eviction order that
``functools.lru_cache`` keeps up to date on every hit.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

LIMIT = 2048


def remember(cache: dict[K, V], key: K, value: V, limit: int = LIMIT) -> V:
    """Store ``value`` for ``key`` in ``cache`` (emptied first when it holds ``limit``)."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value
