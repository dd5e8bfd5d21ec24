"""`TieredMemory`: the read-through of `tiertrace._memory.planner` over blocking clients.

It composes one `Planner` (configuration, key derivation, the plans, `LookupMetrics`) and
executes each step of a plan with a blocking call: ``redis.Redis``, a ``psycopg.Connection``
or ``ConnectionPool``, a chromadb ``Collection``. The guide is in `tiertrace._memory.planner`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from tiertrace._lookups.grouping import lookup
from tiertrace._memory.planner import LookupMetrics, Plan, Planner, default_serialize

__all__ = ["TieredMemory"]


class TieredMemory:
    """Read-through memory over sync clients (see `tiertrace._memory.planner`)."""

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
        plan = self.planner
        with lookup(query_type=query_type, user_id=user_id, agent_id=agent_id) as lk:
            key = plan.label(lk, query, query_type)
            result, lk.result_count = self._run(plan.read(query, key))
        return result, plan.metrics(lk)

    def put(self, query: str, value: Any) -> None:
        """Write ``value`` for ``query`` through to every tier."""
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
