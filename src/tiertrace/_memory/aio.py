"""`AsyncTieredMemory`: the read-through of `tiertrace._memory.planner` over asyncio clients.

It composes one `Planner`, exactly as `tiertrace._memory.sync.TieredMemory` does, and awaits
each step of a plan: ``redis.asyncio``, a ``psycopg.AsyncConnection`` or
``AsyncConnectionPool``, a chromadb ``AsyncCollection``. The guide is in
`tiertrace._memory.planner`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from tiertrace._lookups.grouping import lookup
from tiertrace._memory.planner import LookupMetrics, Plan, PlannedMemory

__all__ = ["AsyncTieredMemory"]


class AsyncTieredMemory(PlannedMemory):
    """Read-through memory over the three tiers, with asyncio clients; `TieredMemory`'s twin.

    Each call of `get` or `track_memory_access` is one explicit lookup: a Redis ``GET`` of a
    key derived from the query (``key_prefix`` + a hash of the text with case and spacing
    folded, so the query text never becomes a key), then ``sql`` with the query as its one
    parameter, then a Chroma ``query``. The first hit wins and is returned as that store
    returned it (bytes from Redis, the row from PostgreSQL, the ``QueryResult`` from Chroma;
    a Chroma result is a hit by the Chroma tier's rule, ``hit_distance`` included). A hit in
    a lower tier is promoted to the tiers above it. Query texts are never put on spans,
    events or labels. Leave out a store to use fewer tiers.

    Args:
        redis: the level-1 client (``redis.asyncio.Redis``).
        postgres: the level-2 connection (``psycopg.AsyncConnection``) or pool
            (``psycopg_pool.AsyncConnectionPool``).
        sql: a ``SELECT`` with one parameter, the query text; its first row is the answer.
            Required with ``postgres``.
        put_sql: an ``INSERT`` with two parameters, the query and the answer, used to promote
            Chroma hits and by `put`; None: PostgreSQL is read only.
        chroma: the level-3 collection (a chromadb ``AsyncCollection``).
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
        memory = AsyncTieredMemory(
            redis=redis.asyncio.Redis(),
            postgres=await psycopg.AsyncConnection.connect(dsn, autocommit=True),
            sql="SELECT body FROM memories WHERE query = %s",
            chroma=await (await chromadb.AsyncHttpClient()).get_collection("memories"),
        )
        result, metrics = await memory.track_memory_access("what did alice order?")
        ```
    """

    async def get(
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
        result, _ = await self.track_memory_access(
            query, user_id=user_id, agent_id=agent_id, query_type=query_type
        )
        return result

    async def track_memory_access(
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
        async with lookup(query_type=query_type, user_id=user_id, agent_id=agent_id) as lk:
            key = plan.label(lk, query, query_type)
            result, lk.result_count = await self._run(plan.read(query, key))
        return result, plan.metrics(lk)

    async def put(self, query: str, value: Any) -> None:
        """Write ``value`` for ``query`` through to every tier.

        Redis ``SET`` with the Redis TTL, PostgreSQL through ``put_sql`` (when given), Chroma
        ``upsert`` of the serialized value with the query's embedding.

        Args:
            query: the query text the value answers.
            value: the answer; stored with ``serialize``.
        """
        await self._run(self.planner.write(query, value))

    async def _run(self, plan: Plan) -> Any:
        try:
            step = next(plan)
            while True:
                step = plan.send(await self._step(*step))
        except StopIteration as done:
            return done.value

    def _conn(self) -> AbstractAsyncContextManager[Any]:
        pg = self.planner.postgres
        return pg.connection() if hasattr(pg, "getconn") else _Same(pg)

    async def _step(self, op: str, arg: Any) -> Any:
        clients = self.planner
        if op == "redis_get":
            return await clients.redis.get(arg)
        if op == "redis_set":
            key, text, ttl = arg
            return await clients.redis.set(key, text, ex=ttl)
        if op == "pg_get":
            async with self._conn() as conn:
                return await (await conn.execute(*arg)).fetchone()
        if op == "pg_put":
            async with self._conn() as conn:
                await conn.execute(*arg)
                if not getattr(conn, "autocommit", True):
                    await conn.commit()
            return None
        if op == "chroma_query":
            return await clients.chroma.query(**arg)
        if op == "chroma_upsert":
            return await clients.chroma.upsert(**arg)
        raise ValueError(op)


class _Same(AbstractAsyncContextManager[Any]):
    """A connection used as is: ``async with`` neither opens nor closes it."""

    def __init__(self, value: Any) -> None:
        self.value = value

    async def __aenter__(self) -> Any:
        return self.value

    async def __aexit__(self, *exc: object) -> None:
        return None
