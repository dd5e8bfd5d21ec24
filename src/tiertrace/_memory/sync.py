"""`TieredMemory`: the read-through of `tiertrace._memory.planner` over blocking clients.

It composes one `Planner` (configuration, key derivation, the plans, `LookupMetrics`) and
executes each step of a plan with a blocking call: ``redis.Redis``, a ``psycopg.Connection``
or ``ConnectionPool``, a chromadb ``Collection``. The guide is in `tiertrace._memory.planner`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from tiertrace._lookups.grouping import lookup
from tiertrace._memory.planner import LookupMetrics, Plan, PlannedMemory

__all__ = ["TieredMemory"]


class TieredMemory(PlannedMemory):
    """Read-through memory over the three tiers, with blocking clients.

    Each call of `get` or `track_memory_access` is one explicit lookup: a Redis ``GET`` of a
    key derived from the query (``key_prefix`` + a hash of the text with case and spacing
    folded, so the query text never becomes a key), then ``sql`` with the query as its one
    parameter, then a Chroma ``query``. The first hit wins and is returned as that store
    returned it (bytes from Redis, the row from PostgreSQL, the ``QueryResult`` from Chroma;
    a Chroma result is a hit by the Chroma tier's rule, ``hit_distance`` included). A hit in
    a lower tier is promoted to the tiers above it. Query texts are never put on spans,
    events or labels. Leave out a store to use fewer tiers.

    Args:
        redis: the level-1 client (``redis.Redis``).
        postgres: the level-2 connection (``psycopg.Connection``) or pool
            (``psycopg_pool.ConnectionPool``).
        sql: a ``SELECT`` with one parameter, the query text; its first row is the answer.
            Required with ``postgres``.
        put_sql: an ``INSERT`` with two parameters, the query and the answer, used to promote
            Chroma hits and by `put`; None: PostgreSQL is read only.
        chroma: the level-3 collection (``chromadb`` ``Collection``).
        embedding_function: embeds the query for Chroma; None: the collection's own, through
            ``query_texts``.
        n_results: ``n_results`` of the Chroma query.
        ttl_s: expiry of promoted entries per tier; ``{"redis": 300}`` by default.
        promote: write a lower tier's hit to the tiers above it.
        key_prefix: prefix of the Redis keys.
        serialize: how an answer is stored in the tiers above it (text or bytes); by default
            strings and bytes as they are, a one-column row as its value, a Chroma result as
            the JSON list of its documents, anything else as JSON.

    Raises:
        TypeError: ``postgres`` is given without ``sql``.

    Example:
        ```python
        memory = TieredMemory(
            redis=redis.Redis(),
            postgres=psycopg.connect(dsn, autocommit=True),
            sql="SELECT body FROM memories WHERE query = %s",
            put_sql="INSERT INTO memories (query, body) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            chroma=collection,
            embedding_function=tiertrace.HashingEmbeddingFunction(),
            ttl_s={"redis": 300},
        )
        result, metrics = memory.track_memory_access("what did alice order?", user_id="alice")
        print(metrics.tier_accessed, metrics.total_latency_ms, metrics.cost_usd)
        ```
    """

    def get(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        query_type: str | None = None,
    ) -> Any:
        """The first hit for ``query`` across the tiers, or None (one explicit lookup).

        Args:
            query: the query text; it is the SQL parameter and the Chroma query, and only its
                hash becomes a key.
            user_id: put on the lookup span as ``user.id`` (never a metric label).
            agent_id: put on the lookup span as ``gen_ai.agent.id``.
            query_type: the lookup's ``tiertrace.query_type`` (keep to a handful of values).

        Returns:
            What the serving store returned, or None when no tier had it.
        """
        return self.track_memory_access(
            query, user_id=user_id, agent_id=agent_id, query_type=query_type
        )[0]

    def track_memory_access(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        query_type: str | None = None,
    ) -> tuple[Any, LookupMetrics]:
        """Like `get`, and also what the lookup did.

        Args:
            query: the query text.
            user_id: put on the lookup span as ``user.id``.
            agent_id: put on the lookup span as ``gen_ai.agent.id``.
            query_type: the lookup's ``tiertrace.query_type``.

        Returns:
            ``(result, metrics)``: the answer as `get` returns it, and a `LookupMetrics`.
        """
        plan = self.planner
        with lookup(query_type=query_type, user_id=user_id, agent_id=agent_id) as lk:
            key = plan.label(lk, query, query_type)
            result, lk.result_count = self._run(plan.read(query, key))
        return result, plan.metrics(lk)

    def put(self, query: str, value: Any) -> None:
        """Write ``value`` for ``query`` through to every tier.

        Redis ``SET`` with the Redis TTL, PostgreSQL through ``put_sql`` (when given), Chroma
        ``upsert`` of the serialized value with the query's embedding.

        Args:
            query: the query text the value answers.
            value: the answer; stored with ``serialize``.
        """
        self._run(self.planner.write(query, value))

    def _run(self, plan: Plan) -> Any:
        try:
            step = next(plan)
            while True:
                step = plan.send(self._step(*step))
        except StopIteration as done:
            return done.value

    def _conn(self) -> AbstractContextManager[Any]:
        pg = self.planner.postgres
        return pg.connection() if hasattr(pg, "getconn") else nullcontext(pg)

    def _step(self, op: str, arg: Any) -> Any:
        clients = self.planner
        if op == "redis_get":
            return clients.redis.get(arg)
        if op == "redis_set":
            key, text, ttl = arg
            return clients.redis.set(key, text, ex=ttl)
        if op == "pg_get":
            with self._conn() as conn:
                return conn.execute(*arg).fetchone()
        if op == "pg_put":
            with self._conn() as conn:
                conn.execute(*arg)
                if not getattr(conn, "autocommit", True):
                    conn.commit()
            return None
        if op == "chroma_query":
            return clients.chroma.query(**arg)
        if op == "chroma_upsert":
            return clients.chroma.upsert(**arg)
        raise ValueError(op)
