"""``TieredMemory``: a read-through memory over Redis, PostgreSQL and Chroma, fully traced.

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
derived from
the query (``key_prefix`` + a hash of the text with case and spacing folded: the query text never
becomes a key), then the SQL with the
query as its one parameter, then a Chroma ``query`` with the query's embedding. The first hit
wins and is returned as that store returned it (bytes from Redis, the row from PostgreSQL, the
``QueryResult`` from Chroma). A hit in a lower tier is promoted to the tiers above it (Redis
``SET`` with ``ttl_s["redis"]``; PostgreSQL through ``put_sql`` when given); ``promote=False``
turns that off. ``put()`` writes through to every tier. ``AsyncTieredMemory`` is the same over
``redis.asyncio``, ``psycopg.AsyncConnection`` / ``AsyncConnectionPool`` and an
``AsyncCollection``. Query texts are never put on spans, events or labels.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tiertrace._core.binding import TIERS
from tiertrace._core.sanitize.keys import text_fingerprint
from tiertrace._lookups.grouping import Lookup, lookup
from tiertrace._runtime import process as _runtime

Step = tuple[str, Any]
Plan = Generator[Step, Any, Any]


@dataclass(frozen=True)
class LookupMetrics:
    """What one `TieredMemory` lookup did."""

    tier_accessed: str
    total_latency_ms: float
    access_chain: list[dict[str, Any]]
    cache_hit: bool
    cost_usd: float
    cache_effectiveness: float
    optimization_suggestions: list[Any] = field(default_factory=list)


def _serialize(value: Any) -> str | bytes:
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 1 and isinstance(value[0], (str, bytes)):
        return value[0]
    if isinstance(value, Mapping) and "documents" in value:  # a Chroma QueryResult
        docs = value.get("documents") or [[]]
        return json.dumps(docs[0] if docs else [], default=str)
    return json.dumps(value, default=str)


class _Base:
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
        serialize: Callable[[Any], str | bytes] = _serialize,
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

    def _chroma_hit(self, result: Any) -> bool:
        """The Chroma tier's own hit rule (every query found, within ``hit_distance``)."""
        from tiertrace._instrument.chroma.instrumentor import _tier, query_found

        tier = _tier(self.chroma) or TIERS.maps["chroma"].resolve(self.chroma.name)
        queries, found, _rows = query_found(result or {}, getattr(tier, "hit_distance", None))
        return queries > 0 and found == queries

    def _plan(self, query: str, key: str) -> Plan:
        """The read-through as steps; the sync and async drivers execute them."""
        if self.redis is not None:
            value = yield ("redis_get", key)
            if value is not None:
                return value, 1
        if self.postgres is not None:
            row = yield ("pg_get", query)
            if row is not None:
                if self.promote and self.redis is not None:
                    yield ("redis_set", (key, self.serialize(row)))
                return row, 1
        if self.chroma is not None:
            result = yield ("chroma_query", query)
            if self._chroma_hit(result):
                if self.promote:
                    text = self.serialize(result)
                    if self.postgres is not None and self.put_sql:
                        yield ("pg_put", (query, text))
                    if self.redis is not None:
                        yield ("redis_set", (key, text))
                return result, len(result["ids"][0])
        return None, 0

    def _put_plan(self, query: str, value: Any) -> Plan:
        text = self.serialize(value)
        if self.redis is not None:
            yield ("redis_set", (self.key(query), text))
        if self.postgres is not None and self.put_sql:
            yield ("pg_put", (query, text))
        if self.chroma is not None:
            yield ("chroma_upsert", (query, text))

    def _embedding(self, query: str) -> Any:
        if self.embed is None:
            return None
        return list(self.embed([query]))

    def _open(
        self, query: str, query_type: str | None, user_id: str | None, agent_id: str | None
    ) -> tuple[lookup, Lookup, str]:
        """Open the explicit lookup of ``query``; also returns its Redis key."""
        ctx = lookup(query_type=query_type, user_id=user_id, agent_id=agent_id)
        lk = ctx.__enter__()
        lk.pattern = text_fingerprint(query, query_type)
        lk.key = key = self.key(query)
        return ctx, lk, key

    @staticmethod
    def _metrics(lk: Lookup) -> LookupMetrics:
        served = lk.served
        h = _runtime.handle()
        effectiveness = 0.0
        suggestions: list[Any] = []
        if h is not None:
            effectiveness = h.stats.cache_effectiveness()
            suggestions = [s for s in h.suggestions(1.0) if s.pattern == lk.pattern]
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
