"""`TieredMemory` and `AsyncTieredMemory`: the drivers of the read-through in
`tiertrace._memory.planner`.

Both run the same plan (Redis → PostgreSQL → Chroma, first hit wins, promotion upwards); one
executes its steps with blocking calls, the other awaits them.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from typing import Any

from tiertrace._memory.planner import LookupMetrics, Plan, _Base


class TieredMemory(_Base):
    """Read-through memory over sync clients (see `tiertrace._memory.planner`)."""

    def get(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        query_type: str | None = None,
    ) -> Any:
        """The first hit for ``query`` across the tiers, or None."""
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
        """Like `get`, and also what the lookup did (`LookupMetrics`)."""
        ctx, lk, key = self._open(query, query_type, user_id, agent_id)
        try:
            result, count = self._run(self._plan(query, key))
            lk.result_count = count
        finally:
            ctx.__exit__(None, None, None)
        return result, self._metrics(lk)

    def put(self, query: str, value: Any) -> None:
        """Write ``value`` for ``query`` through to every tier."""
        self._run(self._put_plan(query, value))

    def _run(self, plan: Plan) -> Any:
        try:
            step = next(plan)
            while True:
                step = plan.send(self._step(*step))
        except StopIteration as done:
            return done.value

    def _conn(self) -> AbstractContextManager[Any]:
        pg = self.postgres
        return pg.connection() if hasattr(pg, "getconn") else nullcontext(pg)

    def _step(self, op: str, arg: Any) -> Any:
        if op == "redis_get":
            return self.redis.get(arg)
        if op == "redis_set":
            return self.redis.set(arg[0], arg[1], ex=self.ttl)
        if op == "pg_get":
            with self._conn() as conn:
                return conn.execute(self.sql, (arg,)).fetchone()
        if op == "pg_put":
            with self._conn() as conn:
                conn.execute(self.put_sql, arg)
                if not getattr(conn, "autocommit", True):
                    conn.commit()
            return None
        if op == "chroma_query":
            return self.chroma.query(**self._query_args(arg))
        if op == "chroma_upsert":
            return self.chroma.upsert(**self._upsert_args(*arg))
        raise ValueError(op)

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


class AsyncTieredMemory(TieredMemory):
    """Read-through memory over asyncio clients (see `tiertrace._memory.planner`)."""

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

    async def track_memory_access(  # type: ignore[override]
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        query_type: str | None = None,
    ) -> tuple[Any, LookupMetrics]:
        """Like `get`, and also what the lookup did (`LookupMetrics`)."""
        ctx, lk, key = self._open(query, query_type, user_id, agent_id)
        try:
            result, count = await self._arun(self._plan(query, key))
            lk.result_count = count
        finally:
            ctx.__exit__(None, None, None)
        return result, self._metrics(lk)

    async def put(self, query: str, value: Any) -> None:  # type: ignore[override]
        """Write ``value`` for ``query`` through to every tier."""
        await self._arun(self._put_plan(query, value))

    async def _arun(self, plan: Plan) -> Any:
        try:
            step = next(plan)
            while True:
                step = plan.send(await self._astep(*step))
        except StopIteration as done:
            return done.value

    def _aconn(self) -> AbstractAsyncContextManager[Any]:
        pg = self.postgres
        return pg.connection() if hasattr(pg, "getconn") else _Same(pg)

    async def _astep(self, op: str, arg: Any) -> Any:
        if op == "redis_get":
            return await self.redis.get(arg)
        if op == "redis_set":
            return await self.redis.set(arg[0], arg[1], ex=self.ttl)
        if op == "pg_get":
            async with self._aconn() as conn:
                return await (await conn.execute(self.sql, (arg,))).fetchone()
        if op == "pg_put":
            async with self._aconn() as conn:
                await conn.execute(self.put_sql, arg)
                if not getattr(conn, "autocommit", True):
                    await conn.commit()
            return None
        if op == "chroma_query":
            return await self.chroma.query(**self._query_args(arg))
        if op == "chroma_upsert":
            return await self.chroma.upsert(**self._upsert_args(*arg))
        raise ValueError(op)


class _Same(AbstractAsyncContextManager[Any]):
    def __init__(self, value: Any) -> None:
        self.value = value

    async def __aenter__(self) -> Any:
        return self.value

    async def __aexit__(self, *exc: object) -> None:
        return None
