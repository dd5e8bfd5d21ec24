"""The read-through shared by `TieredMemory` and `AsyncTieredMemory`: key, plan, metrics.

::

    import psycopg, redis, chromadb, tiertrace
    from tiertrace import TieredMemory, HashingEmbeddingFunction

    tiertrace.init()
    memory = TieredMemory(
        redis=redis.Redis(),
        postgres=psycopg.connect("postgresql://postgres@127.0.0.1/app", autocommit=True),
        sql="SELECT body FROM memories WHERE query = %s",
        put_sql="INSERT INTO memories (query, body) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        chroma=chromadb.PersistentClient("./chroma").get_or_create_collection("memories"),
        embedding_function=HashingEmbeddingFunction(),
        ttl_s={"redis": 300},
    )
    result, metrics = memory.track_memory_access("what did alice order?", user_id="alice")
    print(metrics.tier_accessed, metrics.total_latency_ms, metrics.cost_usd)

Each call is one explicit lookup (see `tiertrace._lookups.grouping`): Redis ``GET`` of a key
derived from the query (``key_prefix`` + a hash of the text with case and spacing folded: the
query text never becomes a key), then the SQL with the query as its one parameter, then a
Chroma ``query`` with the query's embedding. The first hit wins and is returned as that store
returned it (bytes from Redis, the row from PostgreSQL, the ``QueryResult`` from Chroma; a
Chroma result is a hit by the Chroma tier's own rule, see
`tiertrace._instrument.chroma.instrumentor.collection_served`). A hit in a lower tier is
promoted to the tiers above it (Redis ``SET`` with ``ttl_s["redis"]``; PostgreSQL through
``put_sql`` when given); ``promote=False`` turns that off. ``put()`` writes through to every
tier. ``AsyncTieredMemory`` is the same over ``redis.asyncio``, ``psycopg.AsyncConnection`` /
``AsyncConnectionPool`` and an ``AsyncCollection``. Query texts are never put on spans,
events or labels.

How it is built: `Planner` holds the configuration and describes the read-through and the
write-through as *plans*, generators of `Step` tuples ``(operation, arguments)`` that receive
each step's result and return the answer. `tiertrace._memory.sync.TieredMemory` executes the
steps with blocking calls, `tiertrace._memory.aio.AsyncTieredMemory` awaits them; both compose
one `Planner`, so the rules live here once. The operations and their arguments:

* ``redis_get`` ``key`` / ``redis_set`` ``(key, text, ttl_s)``
* ``pg_get`` ``(sql, params)`` (one row or None) / ``pg_put`` ``(sql, params)`` (commits unless
  the connection is in autocommit)
* ``chroma_query`` / ``chroma_upsert``: the keyword arguments of the collection call

`LookupMetrics` also reports the process-wide cache effectiveness and the advisor's current
suggestions for the lookup's pattern. Those come from the runtime, which stands above this
package: it registers itself with `set_figures` at ``init()`` and clears it at ``shutdown()``
(before that, and after, they are ``0.0`` and ``[]``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tiertrace._core.sanitize.keys import text_fingerprint
from tiertrace._lookups.grouping import Lookup

__all__ = [
    "Effectiveness",
    "Figures",
    "LookupMetrics",
    "Plan",
    "PlannedMemory",
    "Planner",
    "Step",
    "default_serialize",
    "set_figures",
]

Step = tuple[str, Any]
Plan = Generator[Step, Any, Any]


@dataclass(frozen=True)
class LookupMetrics:
    """What one `TieredMemory` or `AsyncTieredMemory` lookup did.

    Attributes:
        tier_accessed: the tier that served it, or ``"none"``.
        total_latency_ms: the whole fall-through, milliseconds.
        access_chain: the accesses in order, each ``{tier, level, operation, latency_ms,
            hit, cost, error}``.
        cache_hit: served by level 1.
        cost_usd: the cost of its accesses, at the tiers' prices.
        cache_effectiveness: the process's current share of lookups served by level 1
            (the ``window`` view of `tiertrace.stats`); 0.0 when tiertrace is off.
        optimization_suggestions: the advisor's current `Suggestion` objects for this
            query's pattern.
    """

    tier_accessed: str
    total_latency_ms: float
    access_chain: list[dict[str, Any]]
    cache_hit: bool
    cost_usd: float
    cache_effectiveness: float
    optimization_suggestions: list[Any] = field(default_factory=list)


class Effectiveness(Protocol):
    def cache_effectiveness(self) -> float:
        """Share of the recent lookups served by level 1."""
        ...


class Figures(Protocol):
    """What `LookupMetrics` reads from the running tiertrace (the runtime's handle is one)."""

    @property
    def stats(self) -> Effectiveness: ...

    def suggestions(self, max_age_s: float = ...) -> list[Any]:
        """The advisor's findings, possibly cached for up to ``max_age_s``."""
        ...


_figures: Figures | None = None


def set_figures(figures: Figures | None) -> None:
    """Where `LookupMetrics` takes its process-wide figures from (None: nowhere)."""
    global _figures
    _figures = figures


def default_serialize(value: Any) -> str | bytes:
    """How a lower tier's answer is stored in the tiers above it (``serialize=``'s default)."""
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 1 and isinstance(value[0], (str, bytes)):
        return value[0]
    if isinstance(value, Mapping) and "documents" in value:  # a Chroma QueryResult
        docs = value.get("documents") or [[]]
        return json.dumps(docs[0] if docs else [], default=str)
    return json.dumps(value, default=str)


class Planner:
    """The configuration of one tiered memory and its plans (see the module documentation)."""

    def __init__(
        self,
        *,
        redis: Any = None,
        postgres: Any = None,
        sql: str | None = None,
        put_sql: str | None = None,
        chroma: Any = None,
        embedding_function: Callable[[list[str]], Any] | None = None,
        n_results: int = 3,
        ttl_s: Mapping[str, float] | None = None,
        promote: bool = True,
        key_prefix: str = "memory:",
        serialize: Callable[[Any], str | bytes] = default_serialize,
    ) -> None:
        if postgres is not None and not sql:
            raise TypeError("TieredMemory: postgres= needs sql= (a SELECT with one parameter)")
        self.redis, self.postgres, self.sql, self.put_sql = redis, postgres, sql, put_sql
        self.chroma, self.embed, self.n_results = chroma, embedding_function, n_results
        self.ttl = int((ttl_s or {}).get("redis", 300))
        self.promote, self.prefix, self.serialize = promote, key_prefix, serialize

    def key(self, query: str) -> str:
        """The Redis key of ``query``: prefix + hash of the text with case and spacing folded.

        Only case and runs of white space are folded, so "What is X" and "what is  x" share an
        entry while "balance of account 1001" and "… 2002" never do.
        """
        folded = " ".join(query.casefold().split())
        digest = hashlib.blake2b(folded.encode(), digest_size=12).hexdigest()
        return f"{self.prefix}{digest}"

    def label(self, lk: Lookup, query: str, query_type: str | None) -> str:
        """Give the open lookup ``lk`` the pattern and key of ``query``; returns the key."""
        lk.pattern = text_fingerprint(query, query_type)
        lk.key = key = self.key(query)
        return key

    def read(self, query: str, key: str) -> Plan:
        """The read-through of ``query`` (Redis key ``key``); returns ``(result, count)``."""
        if self.redis is not None:
            value = yield ("redis_get", key)
            if value is not None:
                return value, 1
        if self.postgres is not None:
            row = yield ("pg_get", (self.sql, (query,)))
            if row is not None:
                if self.promote and self.redis is not None:
                    yield ("redis_set", (key, self.serialize(row), self.ttl))
                return row, 1
        if self.chroma is not None:
            result = yield ("chroma_query", self._query_args(query))
            if self._chroma_hit(result):
                if self.promote:
                    text = self.serialize(result)
                    if self.postgres is not None and self.put_sql:
                        yield ("pg_put", (self.put_sql, (query, text)))
                    if self.redis is not None:
                        yield ("redis_set", (key, text, self.ttl))
                return result, len(result["ids"][0])
        return None, 0

    def write(self, query: str, value: Any) -> Plan:
        """The write-through of ``value`` for ``query`` to every tier."""
        text = self.serialize(value)
        if self.redis is not None:
            yield ("redis_set", (self.key(query), text, self.ttl))
        if self.postgres is not None and self.put_sql:
            yield ("pg_put", (self.put_sql, (query, text)))
        if self.chroma is not None:
            yield ("chroma_upsert", self._upsert_args(query, text))

    def metrics(self, lk: Lookup) -> LookupMetrics:
        """What the closed lookup ``lk`` did, with the runtime's current figures."""
        served = lk.served
        figures = _figures
        effectiveness = 0.0
        suggestions: list[Any] = []
        if figures is not None:
            effectiveness = figures.stats.cache_effectiveness()
            suggestions = [s for s in figures.suggestions(1.0) if s.pattern == lk.pattern]
        chain = [
            {
                "tier": a.tier.name,
                "level": a.level,
                "operation": a.op,
                "latency_ms": a.duration_s * 1000,
                "hit": a.hit,
                "cost": a.cost,
                "error": a.error_type,
            }
            for a in lk.accesses
        ]
        return LookupMetrics(
            tier_accessed=served.tier.name if served is not None else "none",
            total_latency_ms=(lk.t_end - lk.t0) * 1000,
            access_chain=chain,
            cache_hit=served is not None and served.level == 1,
            cost_usd=lk.cost,
            cache_effectiveness=effectiveness,
            optimization_suggestions=suggestions,
        )

    def _chroma_hit(self, result: Any) -> bool:
        from tiertrace._instrument.chroma.instrumentor import (
            collection_served,
        )  # chromadb is optional

        return collection_served(self.chroma, result)

    def _embedding(self, query: str) -> Any:
        if self.embed is None:
            return None
        return list(self.embed([query]))

    def _query_args(self, query: str) -> dict[str, Any]:
        emb = self._embedding(query)
        where = {"query_embeddings": emb} if emb is not None else {"query_texts": [query]}
        return {**where, "n_results": self.n_results}

    def _upsert_args(self, query: str, text: Any) -> dict[str, Any]:
        doc = text.decode() if isinstance(text, bytes) else str(text)
        args: dict[str, Any] = {"ids": [self.key(query)], "documents": [doc]}
        emb = self._embedding(query)
        if emb is not None:
            args["embeddings"] = emb
        return args


class PlannedMemory:
    """What `TieredMemory` and `AsyncTieredMemory` share: their settings, held by one `Planner`.

    Only the construction and the key; each of the two runs the plans in its own way (blocking
    calls or awaits), so neither overrides the other.
    """

    def __init__(
        self,
        *,
        redis: Any = None,
        postgres: Any = None,
        sql: str | None = None,
        put_sql: str | None = None,
        chroma: Any = None,
        embedding_function: Callable[[list[str]], Any] | None = None,
        n_results: int = 3,
        ttl_s: Mapping[str, float] | None = None,
        promote: bool = True,
        key_prefix: str = "memory:",
        serialize: Callable[[Any], str | bytes] = default_serialize,
    ) -> None:
        self.planner = Planner(
            redis=redis,
            postgres=postgres,
            sql=sql,
            put_sql=put_sql,
            chroma=chroma,
            embedding_function=embedding_function,
            n_results=n_results,
            ttl_s=ttl_s,
            promote=promote,
            key_prefix=key_prefix,
            serialize=serialize,
        )

    def key(self, query: str) -> str:
        """The Redis key of ``query``: ``key_prefix`` + a hash of the text.

        Only case and runs of white space are folded, so "What is X" and "what is  x" share
        an entry while "balance of account 1001" and "… 2002" never do.
        """
        return self.planner.key(query)
