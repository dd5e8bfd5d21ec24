"""The operations an overhead run times, and the clients they run on.

The lookup rows run ``tiertrace.TieredMemory`` (``promote=False``, so every call is served by the
same tier) under tiertrace and the same read-through written by hand with the raw clients under
the other configurations; the cache-aside rows run the hand-written read-through everywhere
(under tiertrace it is grouped by implicit lookups).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
import redis.asyncio
from psycopg_pool import ConnectionPool

import tiertrace

from .modes import TIERTRACE_CONFIGS
from .services import Env, pin

HIT_KEY, MISS_KEY, SET_KEY = "user:42:profile", "user:999999:profile", "user:43:profile"
ITEM_KEYS = tuple(f"item:{i}:body" for i in range(10))
VALUE = b"v" * 100
SELECT_PK = "SELECT id, body FROM bench_items WHERE id = %s"
SELECT_Q = "SELECT body FROM bench_items WHERE query = %s"
Q_L1, Q_L2, Q_L3 = "what did alice order", "query 4242", "what is the capital of nowhere"


@dataclass(frozen=True)
class Op:
    name: str
    label: str
    is_async: bool = False
    accesses: int = 1  # tier accesses per call
    configs: tuple[str, ...] = ("raw", "metrics", "full", "anchor")


# the goals' rows: also a bare span, and tiertrace under an unsampled parent
_GOAL = ("raw", "metrics", "full", "anchor", "span", "unsampled")
_PG = ("raw", "metrics", "full", "anchor", "anchor_metrics")

OPS = (
    Op("redis_get_hit", "Redis GET hit", configs=_GOAL),
    Op("redis_set", "Redis SET", configs=_GOAL),
    Op("redis_get_miss", "Redis GET miss"),
    Op("redis_pipeline10", "Redis PIPELINE of 10 GET"),
    Op("redis_mget10", "Redis MGET of 10"),
    Op("aredis_get_hit", "redis.asyncio GET hit", True, configs=_GOAL),
    Op("aredis_set", "redis.asyncio SET", True),
    Op("aredis_get_miss", "redis.asyncio GET miss", True),
    Op("aredis_pipeline10", "redis.asyncio PIPELINE of 10", True),
    Op("aredis_mget10", "redis.asyncio MGET of 10", True),
    Op("pg_select", "psycopg SELECT by PK (cursor)", configs=(*_PG, "span", "unsampled")),
    Op("pg_pool_select", "psycopg SELECT by PK (pool)", configs=_PG),
    Op("pg_async_select", "psycopg SELECT by PK (async)", True, configs=_PG),
    Op("chroma_query", "Chroma query k=5", configs=_GOAL),
    Op("chroma_get", "Chroma get by id"),
    Op("lookup_l1", "TieredMemory lookup, L1 serves", accesses=1),
    Op("lookup_l2", "TieredMemory lookup, L2 serves", accesses=2),
    Op("lookup_l3", "TieredMemory lookup, L3 serves", accesses=3),
    Op("cacheaside_l1", "cache-aside by hand, L1 serves", accesses=1),
    Op("cacheaside_l2", "cache-aside by hand, L2 serves", accesses=2),
    Op("cacheaside_l3", "cache-aside by hand, L3 serves", accesses=3),
)


def find_op(name: str) -> Op:
    op = next((o for o in OPS if o.name == name), None)
    if op is None:
        raise SystemExit(f"--op: unknown operation {name!r}; one of {[o.name for o in OPS]}")
    return op


def memory_key(query: str) -> str:
    return "memory:" + hashlib.blake2b(query.encode(), digest_size=12).hexdigest()


def seed_redis(port: int) -> None:
    r = redis.Redis(port=port)
    r.flushdb()
    r.set(HIT_KEY, VALUE)
    for key in ITEM_KEYS:
        r.set(key, VALUE)
    probe = tiertrace.TieredMemory(redis=r)  # its key derivation only; nothing is instrumented
    r.set(probe.key(Q_L1), VALUE)
    r.set(memory_key(Q_L1), VALUE)
    r.close()


def _bind(fn: Callable[[str], Any], arg: str) -> Callable[[], Any]:
    return lambda: fn(arg)


class Clients:
    """Clients opened after a configuration was activated (the contrib psycopg instrumentation
    only reaches connections opened after ``instrument()``)."""

    def __init__(self, env: Env, config: str) -> None:
        loop = env.loop
        self.loop = loop
        self.r = redis.Redis(port=env.redis_port)
        self.ar = redis.asyncio.Redis(port=env.redis_port)
        self.conn = psycopg.connect(env.dsn, autocommit=True)
        self.cur = self.conn.cursor()
        self.pool = ConnectionPool(
            env.dsn, min_size=1, max_size=1, kwargs={"autocommit": True}, open=True
        )
        self.pool.wait()
        self.aconn = loop.run_until_complete(
            psycopg.AsyncConnection.connect(env.dsn, autocommit=True)
        )
        self.acur = self.aconn.cursor()
        with self.pool.connection() as pooled:
            backends = [self.conn.info.backend_pid, self.aconn.info.backend_pid]
            backends.append(pooled.info.backend_pid)
        for pid in backends:
            pin(pid, env.cpu)
        if config == "raw" and type(self.cur) is not psycopg.Cursor:
            raise SystemExit(f"raw configuration has a wrapped cursor: {type(self.cur)}")
        self.col = env.chroma.col
        self.embed = env.chroma.embed
        self.memory = (
            tiertrace.TieredMemory(
                redis=self.r,
                postgres=self.conn,
                sql=SELECT_Q,
                chroma=self.col,
                embedding_function=self.embed,
                n_results=3,
                promote=False,
            )
            if config in TIERTRACE_CONFIGS
            else None
        )

    def close(self) -> None:
        self.cur.close()
        self.conn.close()
        self.pool.close()
        self.loop.run_until_complete(self.aconn.close())
        self.loop.run_until_complete(self.ar.aclose())
        self.r.close()

    def by_hand(self, query: str) -> tuple[Any, int]:
        """The read-through TieredMemory does, written with the plain clients."""
        value = self.r.get(memory_key(query))
        if value is not None:
            return value, 1
        row = self.conn.execute(SELECT_Q, (query,)).fetchone()
        if row is not None:
            return row, 2
        result = self.col.query(query_embeddings=list(self.embed([query])), n_results=3)
        return (result, 3) if result["ids"] and result["ids"][0] else (None, 0)

    def ops(self) -> dict[str, Callable[[], Any]]:
        r, ar, cur, pool, acur, col = self.r, self.ar, self.cur, self.pool, self.acur, self.col
        qvec = self.embed(["q"])

        def pipeline10() -> None:
            p = r.pipeline(transaction=False)
            for key in ITEM_KEYS:
                p.get(key)
            p.execute()

        async def apipeline10() -> None:
            p = ar.pipeline(transaction=False)
            for key in ITEM_KEYS:
                p.get(key)
            await p.execute()

        def pg_select() -> None:
            cur.execute(SELECT_PK, (42,))
            cur.fetchone()

        def pg_pool_select() -> None:
            with pool.connection() as cx:
                cx.execute(SELECT_PK, (42,)).fetchone()

        async def pg_async_select() -> None:
            await acur.execute(SELECT_PK, (42,))
            await acur.fetchone()

        memory = self.memory
        if memory is not None:
            track = memory.track_memory_access
            lookups = {f"lookup_l{i}": _bind(track, q) for i, q in enumerate((Q_L1, Q_L2, Q_L3), 1)}
        else:
            by_hand = self.by_hand
            lookups = {
                f"lookup_l{i}": _bind(by_hand, q) for i, q in enumerate((Q_L1, Q_L2, Q_L3), 1)
            }
        return {
            "redis_get_hit": lambda: r.get(HIT_KEY),
            "redis_set": lambda: r.set(SET_KEY, VALUE),
            "redis_get_miss": lambda: r.get(MISS_KEY),
            "redis_pipeline10": pipeline10,
            "redis_mget10": lambda: r.mget(ITEM_KEYS),
            "aredis_get_hit": lambda: ar.get(HIT_KEY),
            "aredis_set": lambda: ar.set(SET_KEY, VALUE),
            "aredis_get_miss": lambda: ar.get(MISS_KEY),
            "aredis_pipeline10": apipeline10,
            "aredis_mget10": lambda: ar.mget(ITEM_KEYS),
            "pg_select": pg_select,
            "pg_pool_select": pg_pool_select,
            "pg_async_select": pg_async_select,
            "chroma_query": lambda: col.query(query_embeddings=qvec, n_results=5),
            "chroma_get": lambda: col.get(ids=["id-123"]),
            **lookups,
            "cacheaside_l1": _bind(self.by_hand, Q_L1),
            "cacheaside_l2": _bind(self.by_hand, Q_L2),
            "cacheaside_l3": _bind(self.by_hand, Q_L3),
        }

    def check(self, config: str) -> None:
        """The lookup rows are served by the tier they claim (checked outside the timing)."""
        for level, query in enumerate((Q_L1, Q_L2, Q_L3), 1):
            if self.by_hand(query)[1] != level:
                raise SystemExit(f"by-hand lookup of {query!r} not served by level {level}")
            if self.memory is not None:
                _, metrics = self.memory.track_memory_access(query)
                want = ("redis", "postgresql", "chroma")[level - 1]
                if metrics.tier_accessed != want:
                    raise SystemExit(f"TieredMemory {query!r}: {metrics.tier_accessed} != {want}")
