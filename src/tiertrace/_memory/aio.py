"""`AsyncTieredMemory`: the read-through of `tiertrace._memory.planner` over asyncio clients.

It composes one `Planner`, exactly as `tiertrace._memory.sync.TieredMemory` does, and awaits
each step of a plan: ``redis.asyncio``, a ``psycopg.AsyncConnection`` or
``AsyncConnectionPool``, a chromadb ``AsyncCollection``. The guide is in
`tiertrace._memory.planner`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from tiertrace._lookups.grouping import lookup
from tiertrace._memory.planner import LookupMetrics, Plan, Planner, default_serialize

__all__ = ["AsyncTieredMemory"]


class AsyncTieredMemory:
    """Read-through memory over asyncio clients (see `tiertrace._memory.planner`)."""

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
        """The Redis key of ``query`` (see `Planner.key`)."""
        return self.planner.key(query)

    async def get(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        query_type: str | None = None,
    ) -> Any:
        """The first hit for ``query`` across the tiers, or None."""
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
        """Like `get`, and also what the lookup did (`LookupMetrics`)."""
        plan = self.planner
        async with lookup(query_type=query_type, user_id=user_id, agent_id=agent_id) as lk:
            key = plan.label(lk, query, query_type)
            result, lk.result_count = await self._run(plan.read(query, key))
        return result, plan.metrics(lk)

    async def put(self, query: str, value: Any) -> None:
        """Write ``value`` for ``query`` through to every tier."""
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
