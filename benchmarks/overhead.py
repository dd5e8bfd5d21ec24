"""Overhead of tiertrace on the hot path, measured next to the contrib instrumentations.

Usage::

    python benchmarks/overhead.py [--quick] [--json FILE] [--reps N] [--no-throughput]
    python benchmarks/overhead.py --profile full|metrics|anchor|raw [--op NAME] [--seconds S]
    python benchmarks/overhead.py --profile-report PYSPY_RAW_FILE [--overhead-us US]

One process measures every operation under four configurations:

* ``raw`` — nothing instrumented (checked after every switch: every patched client method is the
  library's own function again, and a new psycopg connection has psycopg's own cursor class);
* ``metrics`` — ``tiertrace.init(exporter="none")`` with an SDK ``TracerProvider`` whose sampler
  is ALWAYS_OFF and an SDK ``MeterProvider`` read by an ``InMemoryMetricReader``;
* ``full`` — the same with an ALWAYS_ON sampler, a ``BatchSpanProcessor`` into a no-op exporter
  and an SDK ``LoggerProvider`` with a ``BatchLogRecordProcessor`` into a no-op exporter (what
  ``exporter="otlp"`` wires): spans, metrics, cost, lookups and their ``memory_tier_access``
  events, stats and the advisor all on (the defaults);
* ``anchor`` — opentelemetry-instrumentation-redis and -psycopg and openllmetry's
  opentelemetry-instrumentation-chromadb with the tracer and meter provider of ``full`` (they
  record spans only).

Services are private: a redis-server on a free port, a PostgreSQL database created on
127.0.0.1:5432 (user postgres, ``TIERTRACE_BENCH_PG`` to point elsewhere) and dropped at the end,
an embedded Chroma ``PersistentClient`` in a temporary directory holding 5,000 random
384-dimensional vectors with explicit embeddings.

Method: the process, the redis-server and the PostgreSQL backends of the benchmark's connections
share one CPU (a loopback round trip between two vCPUs of a KVM guest costs 40-150 µs more and
is far noisier). Each operation's batch size is calibrated once so that a raw batch lasts about
``--target-ms``; every repetition activates the four configurations in a rotated order
(interleaving cancels drift) and runs, per operation, an untimed warm-up (a tenth of the batch)
and one timed batch with the garbage collector off (setup objects frozen out of its way).
Reported: median µs per call over the repetitions; overheads (+µs) are medians of the
per-repetition differences to raw (paired). A second table gives the same from the CPU time of
the calling thread, which other load on a shared machine disturbs much less than wall time. The
lookup rows run ``tiertrace.TieredMemory`` (``promote=False``, so every call is served by the same
tier) under tiertrace and the same read-through written by hand with the raw clients under
``raw`` and ``anchor``; the cache-aside rows run the hand-written read-through everywhere (under
tiertrace it is grouped by implicit lookups).

Throughput: 8 threads sharing one ``redis.Redis`` and 200 asyncio tasks sharing one
``redis.asyncio.Redis`` on a ``BlockingConnectionPool`` run GET hits for a fixed time, raw and
full (alternating), with the garbage collector on as in a service; reported: ops/s and the share
of the raw throughput that full mode keeps. On one CPU this is the ratio of CPU cost per GET.

Profiling: ``--profile MODE [--op NAME]`` only runs one operation (default ``redis_get_hit``) in
that configuration for ``--seconds`` (default 20), collector off as in the timed batches, and
prints wall and CPU µs per call; run it under py-spy and summarise with ``--profile-report``
(``--overhead-us``: that operation's CPU overhead in that mode, from the CPU table)::

    py-spy record --threads --full-filenames -r 1000 --format raw -o /tmp/full.txt -- \\
        .venv/bin/python benchmarks/overhead.py --profile full --op redis_get_hit
    .venv/bin/python benchmarks/overhead.py --profile-report /tmp/full.txt --overhead-us 85
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
import redis.asyncio
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from psycopg_pool import ConnectionPool

try:
    import tiertrace
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import tiertrace

PG_ADMIN = os.environ.get("TIERTRACE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CONFIGS = ("raw", "metrics", "full", "anchor")
TIERTRACE_CONFIGS = ("metrics", "full")
N_VECTORS, DIM = 5000, 384
HIT_KEY, MISS_KEY, SET_KEY = "user:42:profile", "user:999999:profile", "user:43:profile"
ITEM_KEYS = tuple(f"item:{i}:body" for i in range(10))
VALUE = b"v" * 100
SELECT_PK = "SELECT id, body FROM bench_items WHERE id = %s"
SELECT_Q = "SELECT body FROM bench_items WHERE query = %s"
Q_L1, Q_L2, Q_L3 = "what did alice order", "query 4242", "what is the capital of nowhere"
GOALS = {"redis_get_hit": 24.0, "pg_select": 32.0}
GOAL_CHROMA_PCT, GOAL_METRICS_US, GOAL_RATIO, GOAL_KEPT = 3.0, 8.0, 0.5, 85.0


@dataclass(frozen=True)
class Op:
    name: str
    label: str
    is_async: bool = False
    accesses: int = 1  # tier accesses per call


OPS = (
    Op("redis_get_hit", "Redis GET hit"),
    Op("redis_set", "Redis SET"),
    Op("redis_get_miss", "Redis GET miss"),
    Op("redis_pipeline10", "Redis PIPELINE of 10 GET"),
    Op("redis_mget10", "Redis MGET of 10"),
    Op("aredis_get_hit", "redis.asyncio GET hit", True),
    Op("aredis_set", "redis.asyncio SET", True),
    Op("aredis_get_miss", "redis.asyncio GET miss", True),
    Op("aredis_pipeline10", "redis.asyncio PIPELINE of 10", True),
    Op("aredis_mget10", "redis.asyncio MGET of 10", True),
    Op("pg_select", "psycopg SELECT by PK (cursor)"),
    Op("pg_pool_select", "psycopg SELECT by PK (pool)"),
    Op("pg_async_select", "psycopg SELECT by PK (async)", True),
    Op("chroma_query", "Chroma query k=5"),
    Op("chroma_get", "Chroma get by id"),
    Op("lookup_l1", "TieredMemory lookup, L1 serves", accesses=1),
    Op("lookup_l2", "TieredMemory lookup, L2 serves", accesses=2),
    Op("lookup_l3", "TieredMemory lookup, L3 serves", accesses=3),
    Op("cacheaside_l1", "cache-aside by hand, L1 serves", accesses=1),
    Op("cacheaside_l2", "cache-aside by hand, L2 serves", accesses=2),
    Op("cacheaside_l3", "cache-aside by hand, L3 serves", accesses=3),
)


# -- services ----------------------------------------------------------------------------------
def pin_cpu() -> int | None:
    """Pin this thread (and the threads started later) to one CPU; return it."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    mine = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {mine})
    return mine


def pin(pid: int, cpu: int | None) -> None:
    """Put a server process on the benchmark's CPU.

    On a 2-vCPU KVM guest a loopback round trip between two CPUs cost 40-150 µs more than on one
    CPU and varied from batch to batch by as much; on one CPU it is stable.
    """
    if cpu is not None:
        with contextlib.suppress(OSError):  # not ours to move, or gone
            os.sched_setaffinity(pid, {cpu})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on a free loopback port, on the benchmark's CPU (see `pin`)."""

    def __init__(self, cpu: int | None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tiertrace-bench-redis-")
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self.dir]
        self.proc = subprocess.Popen(
            [binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        pin(self.proc.pid, cpu)
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.025)
        client.close()
        self.version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class PgDatabase:
    """A PostgreSQL database for this run, with ``bench_items``; dropped by `drop`."""

    def __init__(self) -> None:
        self.name = f"tiertrace_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
            self.version = str(admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        self.dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{self.name}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE bench_items (id int PRIMARY KEY, query text NOT NULL UNIQUE,"
                " body text NOT NULL)"
            )
            conn.execute(
                "INSERT INTO bench_items SELECT i, 'query ' || i, repeat('x', 100)"
                " FROM generate_series(1, 10000) AS i"
            )
            conn.execute("ANALYZE bench_items")

    def drop(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Chroma:
    """An embedded Chroma collection of random vectors (explicit embeddings, no model)."""

    def __init__(self) -> None:
        import chromadb
        import numpy as np
        from chromadb.config import Settings

        self.dir = tempfile.mkdtemp(prefix="tiertrace-bench-chroma-")
        self.client = chromadb.PersistentClient(
            path=self.dir, settings=Settings(anonymized_telemetry=False)
        )
        self.col = self.client.create_collection("bench_memories", embedding_function=None)
        vectors = np.random.default_rng(7).random((N_VECTORS, DIM), dtype=np.float32)
        for i in range(0, N_VECTORS, 1000):
            self.col.add(
                ids=[f"id-{j}" for j in range(i, i + 1000)],
                embeddings=vectors[i : i + 1000],
                documents=[f"memory number {j}" for j in range(i, i + 1000)],
            )
        self.qvec = [float(x) + 0.01 for x in vectors[7]]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.qvec for _ in texts]

    def stop(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


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


# -- configurations ----------------------------------------------------------------------------
class CountingSpanExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class CountingLogExporter(LogRecordExporter):  # type: ignore[misc]
    def __init__(self) -> None:
        self.count = 0

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        self.count += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _patch_targets() -> list[tuple[str, type]]:
    import chromadb.api.models.Collection as chroma_collection
    import chromadb.api.segment as chroma_segment
    import redis.asyncio.client as aclient
    import redis.client as sclient

    classes: list[type] = [
        sclient.Redis,
        sclient.Pipeline,
        aclient.Redis,
        aclient.Pipeline,
        psycopg.Cursor,
        psycopg.AsyncCursor,
        psycopg.ServerCursor,
        psycopg.AsyncServerCursor,
        psycopg.Connection,
        psycopg.AsyncConnection,
        chroma_collection.Collection,
        chroma_segment.SegmentAPI,
    ]
    return [(f"{c.__module__}.{c.__qualname__}", c) for c in classes]


def _func(value: Any) -> Any:
    """The function behind a class attribute (a restored classmethod may come back bound)."""
    inner = getattr(value, "__func__", None)
    return value if inner is None else inner


class Pristine:
    """The client classes as the libraries define them, to prove the raw configuration raw."""

    def __init__(self) -> None:
        self.targets = _patch_targets()
        self.saved = {
            name: {k: _func(v) for k, v in vars(cls).items()} for name, cls in self.targets
        }
        self.connect = psycopg.connect

    def check(self) -> None:
        import wrapt

        proxy = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)
        bad = []
        for name, cls in self.targets:
            saved = self.saved[name]
            for key, value in vars(cls).items():
                if isinstance(value, proxy) or saved.get(key) is not _func(value):
                    bad.append(f"{name}.{key}")
        if psycopg.connect is not self.connect or isinstance(psycopg.connect, proxy):
            bad.append("psycopg.connect")
        if redis.Redis.__dict__["execute_command"] is not self.saved["redis.client.Redis"].get(
            "execute_command"
        ):
            bad.append("redis.Redis.execute_command")
        if tiertrace.handle() is not None:
            bad.append("tiertrace handle still live")
        if bad:
            raise SystemExit(f"raw configuration is not raw: {sorted(set(bad))}")


@dataclass
class Active:
    name: str
    providers: list[Any] = field(default_factory=list)
    spans: CountingSpanExporter | None = None
    logs: CountingLogExporter | None = None
    reader: InMemoryMetricReader | None = None
    anchors: list[Any] = field(default_factory=list)

    def close(self) -> dict[str, int]:
        """Switch back to raw; return how much telemetry this activation produced."""
        if self.name in TIERTRACE_CONFIGS:
            tiertrace.shutdown()
        for anchor in self.anchors:
            anchor.uninstrument()
        for provider in self.providers:
            provider.shutdown()
        produced = {"spans": self.spans.count if self.spans else 0}
        produced["logs"] = self.logs.count if self.logs else 0
        if self.reader is not None:
            produced["metric_points"] = _histogram_count(self.reader)
        return produced


def _histogram_count(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    total = 0
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == "tiertrace.access.duration":
                    total += sum(p.count for p in m.data.data_points)
    return total


def activate(name: str) -> Active:
    if name == "raw":
        return Active(name)
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    if name == "metrics":
        tp = TracerProvider(sampler=ALWAYS_OFF)
        tiertrace.init(exporter="none", tracer_provider=tp, meter_provider=mp)
        return Active(name, [tp, mp], reader=reader)
    spans = CountingSpanExporter()
    tp = TracerProvider(sampler=ALWAYS_ON)
    tp.add_span_processor(BatchSpanProcessor(spans))
    if name == "full":
        logs = CountingLogExporter()
        lp = LoggerProvider()
        lp.add_log_record_processor(BatchLogRecordProcessor(logs))
        tiertrace.init(exporter="none", tracer_provider=tp, meter_provider=mp, logger_provider=lp)
        return Active(name, [tp, mp, lp], spans, logs, reader)
    from opentelemetry.instrumentation.chromadb import ChromaInstrumentor as ChromaAnchor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor as PsycopgAnchor
    from opentelemetry.instrumentation.redis import RedisInstrumentor as RedisAnchor

    anchors = [RedisAnchor(), PsycopgAnchor(), ChromaAnchor()]
    for anchor in anchors:
        anchor.instrument(tracer_provider=tp, meter_provider=mp, skip_dep_check=True)
    return Active(name, [tp, mp], spans, reader=reader, anchors=anchors)


# -- clients and operations --------------------------------------------------------------------
@dataclass
class Env:
    redis_port: int
    dsn: str
    chroma: Chroma
    loop: asyncio.AbstractEventLoop
    cpu: int | None


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


def _bind(fn: Callable[[str], Any], arg: str) -> Callable[[], Any]:
    return lambda: fn(arg)


# -- timing ------------------------------------------------------------------------------------
Timing = tuple[float, float]  # µs per call: wall clock, CPU time of the calling thread


def time_sync(fn: Callable[[], Any], n: int) -> Timing:
    """µs per call of ``n`` calls, the collector off."""
    gc.collect(1)
    gc.disable()
    try:
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(n):
            fn()
        t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        return (t1 - t0) / 1e3 / n, (c1 - c0) / 1e3 / n
    finally:
        gc.enable()


async def _time_async(fn: Callable[[], Any], n: int) -> Timing:
    c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
    for _ in range(n):
        await fn()
    t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
    return (t1 - t0) / 1e3 / n, (c1 - c0) / 1e3 / n


def time_async(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any], n: int) -> Timing:
    gc.collect(1)
    gc.disable()
    try:
        return loop.run_until_complete(_time_async(fn, n))
    finally:
        gc.enable()


def run_op(op: Op, fn: Callable[[], Any], n: int, loop: asyncio.AbstractEventLoop) -> Timing:
    warm = max(10, n // 10)
    if op.is_async:
        time_async(loop, fn, warm)
        return time_async(loop, fn, n)
    time_sync(fn, warm)
    return time_sync(fn, n)


@dataclass
class Plan:
    reps: int
    target_s: float
    throughput_s: float
    throughput_rounds: int
    ops: tuple[Op, ...] = OPS
    sizes: dict[str, int] = field(default_factory=dict)


def calibrate(env: Env, plan: Plan) -> dict[str, float]:
    """Batch sizes so that a raw batch lasts about ``plan.target_s``."""
    active = activate("raw")
    clients = Clients(env, "raw")
    clients.check("raw")
    fns = clients.ops()
    estimate: dict[str, float] = {}
    for op in plan.ops:
        us = min(run_op(op, fns[op.name], 30, env.loop)[0] for _ in range(2))
        estimate[op.name] = us
        plan.sizes[op.name] = max(30, int(plan.target_s * 1e6 / us))
    clients.close()
    active.close()
    return estimate


def measure(env: Env, plan: Plan, pristine: Pristine, log: Callable[[str], None]) -> Any:
    samples: dict[str, dict[str, list[Timing]]] = {
        op.name: {c: [] for c in CONFIGS} for op in plan.ops
    }
    produced: dict[str, dict[str, int]] = {}
    for rep in range(plan.reps):
        t0 = time.monotonic()
        order = CONFIGS[rep % len(CONFIGS) :] + CONFIGS[: rep % len(CONFIGS)]
        for config in order:
            active = activate(config)
            clients = Clients(env, config)
            if rep == 0:
                clients.check(config)
            fns = clients.ops()
            for op in plan.ops:
                timing = run_op(op, fns[op.name], plan.sizes[op.name], env.loop)
                samples[op.name][config].append(timing)
            clients.close()
            made = active.close()
            for k, v in made.items():
                produced.setdefault(config, {}).setdefault(k, 0)
                produced[config][k] += v
            pristine.check()
        log(f"  repetition {rep + 1}/{plan.reps} done in {time.monotonic() - t0:.1f} s")
    return samples, produced


def _stats(runs: dict[str, list[float]]) -> dict[str, Any]:
    med = {c: statistics.median(v) for c, v in runs.items()}

    def diffs(config: str) -> list[float]:
        return [a - b for a, b in zip(runs[config], runs["raw"], strict=True)]

    def over(config: str) -> float:
        return statistics.median(diffs(config))

    def iqr(config: str) -> list[float] | None:
        d = diffs(config)
        if len(d) < 4:
            return None
        q = statistics.quantiles(d, n=4)
        return [q[0], q[2]]

    full, metrics, anchor = over("full"), over("metrics"), over("anchor")
    return {
        "full_overhead_iqr_us": iqr("full"),
        "anchor_overhead_iqr_us": iqr("anchor"),
        "raw_us": med["raw"],
        "tiertrace_full_us": med["full"],
        "tiertrace_metrics_us": med["metrics"],
        "anchor_us": med["anchor"],
        "full_overhead_us": full,
        "full_overhead_pct": 100.0 * full / med["raw"],
        "metrics_overhead_us": metrics,
        "anchor_overhead_us": anchor,
        "full_to_anchor_ratio": full / anchor if anchor > 0.05 else None,
    }


def summarize(samples: dict[str, dict[str, list[Timing]]]) -> dict[str, dict[str, Any]]:
    """Wall-clock figures at the top level; the calling thread's CPU time under ``cpu``."""
    out: dict[str, dict[str, Any]] = {}
    for op in OPS:
        s = samples.get(op.name)
        if not s:
            continue
        wall = {c: [t[0] for t in v] for c, v in s.items()}
        cpu = {c: [t[1] for t in v] for c, v in s.items()}
        out[op.name] = {
            "label": op.label,
            "accesses": op.accesses,
            **_stats(wall),
            "cpu": _stats(cpu),
            "samples_us": wall,
            "samples_cpu_us": cpu,
        }
    return out


# -- throughput --------------------------------------------------------------------------------
def threads_throughput(port: int, n_threads: int, seconds: float) -> float:
    r = redis.Redis(port=port, max_connections=n_threads * 2)
    counts = [0] * n_threads
    stop = threading.Event()
    start = threading.Barrier(n_threads + 1)

    def worker(i: int) -> None:
        get = r.get
        start.wait()
        n = 0
        while not stop.is_set():
            get(HIT_KEY)
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    r.close()
    return sum(counts) / elapsed


async def _tasks_throughput(port: int, n_tasks: int, seconds: float) -> float:
    pool = redis.asyncio.BlockingConnectionPool(port=port, max_connections=50)
    ar = redis.asyncio.Redis(connection_pool=pool)
    loop = asyncio.get_running_loop()
    go = asyncio.Event()
    counts = [0] * n_tasks
    deadline = [0.0]

    async def worker(i: int) -> None:
        await go.wait()
        n = 0
        while loop.time() < deadline[0]:
            await ar.get(HIT_KEY)
            n += 1
        counts[i] = n

    tasks = [asyncio.create_task(worker(i)) for i in range(n_tasks)]
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    deadline[0] = loop.time() + seconds
    go.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    await ar.aclose()
    await pool.disconnect()
    return sum(counts) / elapsed


def throughput(env: Env, plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    runs: dict[str, dict[str, list[float]]] = {
        kind: {"raw": [], "full": []} for kind in ("threads", "tasks")
    }
    for rnd in range(plan.throughput_rounds):
        for config in ("raw", "full") if rnd % 2 == 0 else ("full", "raw"):
            active = activate(config)
            threads_throughput(env.redis_port, 8, min(0.5, plan.throughput_s))  # warm-up
            runs["threads"][config].append(threads_throughput(env.redis_port, 8, plan.throughput_s))
            env.loop.run_until_complete(_tasks_throughput(env.redis_port, 200, 0.5))
            runs["tasks"][config].append(
                env.loop.run_until_complete(
                    _tasks_throughput(env.redis_port, 200, plan.throughput_s)
                )
            )
            active.close()
        log(f"  throughput round {rnd + 1}/{plan.throughput_rounds} done")
    out: dict[str, Any] = {"seconds_per_run": plan.throughput_s, "rounds": plan.throughput_rounds}
    for kind, label in (("threads", "8 threads, redis.Redis"), ("tasks", "200 asyncio tasks")):
        raw = statistics.median(runs[kind]["raw"])
        full = statistics.median(runs[kind]["full"])
        out[kind] = {
            "label": label + " GET hit",
            "raw_ops_s": raw,
            "full_ops_s": full,
            "kept_pct": 100.0 * full / raw,
            "runs": runs[kind],
        }
    return out


# -- report ------------------------------------------------------------------------------------
def machine(redis_version: str, pg_version: str, cpu: int | None) -> dict[str, Any]:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    packages = {}
    for dist in (
        "tiertrace",
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-instrumentation",
        "opentelemetry-instrumentation-redis",
        "opentelemetry-instrumentation-psycopg",
        "opentelemetry-instrumentation-chromadb",
        "redis",
        "psycopg",
        "psycopg-binary",
        "psycopg-pool",
        "chromadb",
        "wrapt",
    ):
        try:
            packages[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            packages[dist] = None
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "pinned_cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "redis_server": redis_version,
        "postgresql": pg_version,
        "packages": packages,
    }


def _f(value: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if value is None else fmt.format(value)


def table(ops: dict[str, dict[str, Any]]) -> str:
    head = (
        f"{'operation':<33}{'raw µs':>9}{'full µs':>10}{'full +µs':>10}{'full +%':>9}"
        f"{'metrics +µs':>13}{'anchor +µs':>12}{'full/anchor':>13}"
    )
    lines = [head, "-" * len(head)]
    for row in ops.values():
        lines.append(
            f"{row['label']:<33}{row['raw_us']:>9.1f}{row['tiertrace_full_us']:>10.1f}"
            f"{row['full_overhead_us']:>+10.1f}{row['full_overhead_pct']:>+8.1f}%"
            f"{row['metrics_overhead_us']:>+13.1f}{row['anchor_overhead_us']:>+12.1f}"
            f"{_f(row['full_to_anchor_ratio'], '{:.2f}'):>13}"
        )
    return "\n".join(lines)


def cpu_table(ops: dict[str, dict[str, Any]]) -> str:
    head = (
        f"{'operation':<33}{'raw cpu µs':>11}{'full +µs':>10}{'metrics +µs':>13}"
        f"{'anchor +µs':>12}{'full/anchor':>13}"
    )
    lines = [head, "-" * len(head)]
    for row in ops.values():
        c = row["cpu"]
        lines.append(
            f"{row['label']:<33}{c['raw_us']:>11.1f}{c['full_overhead_us']:>+10.1f}"
            f"{c['metrics_overhead_us']:>+13.1f}{c['anchor_overhead_us']:>+12.1f}"
            f"{_f(c['full_to_anchor_ratio'], '{:.2f}'):>13}"
        )
    return "\n".join(lines)


def goals(ops: dict[str, dict[str, Any]], tput: dict[str, Any] | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, unit: str, le: bool = True) -> None:
        met = value is not None and (value <= limit if le else value >= limit)
        found.append({"goal": name, "value": value, "limit": limit, "unit": unit, "met": met})

    for op, limit in GOALS.items():
        if op in ops:
            add(f"{ops[op]['label']}: full overhead", ops[op]["full_overhead_us"], limit, "µs")
    if "chroma_query" in ops:
        add(
            "Chroma query: full overhead",
            ops["chroma_query"]["full_overhead_pct"],
            GOAL_CHROMA_PCT,
            "%",
        )
    single = [r for n, r in ops.items() if not n.startswith(("lookup", "cacheaside"))]
    if single:
        worst = max(single, key=lambda r: r["metrics_overhead_us"])
        add(
            f"metrics-only overhead per access (worst: {worst['label']})",
            worst["metrics_overhead_us"],
            GOAL_METRICS_US,
            "µs",
        )
    for row in single:
        add(
            f"{row['label']}: full / anchor overhead",
            row["full_to_anchor_ratio"],
            GOAL_RATIO,
            "×",
        )
    if tput:
        for kind in ("threads", "tasks"):
            add(
                f"throughput kept, {tput[kind]['label']}",
                tput[kind]["kept_pct"],
                GOAL_KEPT,
                "%",
                False,
            )
    return found


# -- profiling ---------------------------------------------------------------------------------
def _profiled_loop(fn: Callable[[], Any], seconds: float) -> tuple[int, float, float]:
    n = 0
    c0, t0 = time.thread_time(), time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            fn()
        n += 100
    return n, time.perf_counter() - t0, time.thread_time() - c0


async def _profiled_loop_async(fn: Callable[[], Any], seconds: float) -> tuple[int, float, float]:
    n = 0
    c0, t0 = time.thread_time(), time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            await fn()
        n += 100
    return n, time.perf_counter() - t0, time.thread_time() - c0


def profile_loop(env: Env, mode: str, op_name: str, seconds: float, collect: bool) -> None:
    """One operation in one configuration for ``seconds`` (run it under py-spy).

    As in the timed batches the collector is off unless ``collect``.
    """
    op = next((o for o in OPS if o.name == op_name), None)
    if op is None:
        raise SystemExit(f"--op: unknown operation {op_name!r}; one of {[o.name for o in OPS]}")
    active = activate(mode)
    clients = Clients(env, mode)
    fn = clients.ops()[op.name]

    def run(duration: float) -> tuple[int, float, float]:
        if op.is_async:
            return env.loop.run_until_complete(_profiled_loop_async(fn, duration))
        return _profiled_loop(fn, duration)

    run(min(2.0, seconds / 5))  # warm-up
    gc.collect()
    gc.freeze()
    if not collect:
        gc.disable()
    n, elapsed, cpu = run(seconds)
    gc.enable()
    clients.close()
    active.close()
    print(
        f"profile {mode} {op.name} (gc {'on' if collect else 'off'}): {n} calls, "
        f"{elapsed / n * 1e6:.2f} µs wall, {cpu / n * 1e6:.2f} µs CPU per call"
    )


# A sample is charged to where tiertrace's own code last handed over: the OpenTelemetry entry
# point it called (by function name), the client call it wraps, or else tiertrace's own module
# (stdlib helpers such as json or threading count for their caller). Samples without a tiertrace
# frame (the anchor) are charged to the innermost frame matching OTHERS.
CLIENT = re.compile(
    r"/(redis|psycopg|psycopg_pool|chromadb|numpy|pydantic|asyncio)/|socket\.py|selectors"
)
OTEL_ENTRY = (
    ("SDK span start (sampler, ids, Span(), start attributes)", r"start_span|start_as_current"),
    ("SDK span attributes, events, name", r"set_attribute|update_name|add_event|set_status"),
    ("SDK span end + batch span processor", r"(^|\.)end$|__exit__"),
    ("SDK histogram record", r"record$|(^|\.)add$"),
    ("OTel logs (logger.enabled, emit)", r"emit$|enabled$"),
    ("OTel context (current span, suppression)", r"get_current_span|get_value|attach|detach"),
)
OWN = (
    ("tiertrace key template (_sanitize)", r"tiertrace/_sanitize"),
    ("tiertrace lookup grouping (_lookup)", r"tiertrace/_lookup"),
    ("tiertrace lookup close + event payload (_events)", r"tiertrace/_events"),
    ("tiertrace stats (_stats)", r"tiertrace/_stats"),
    ("tiertrace advisor (_advisor*, _heavy)", r"tiertrace/_(advisor|heavy)"),
    ("tiertrace observe hook (_runtime)", r"tiertrace/_runtime"),
    ("tiertrace tier resolution (_tiers, _binding)", r"tiertrace/_(tiers|binding)"),
    ("tiertrace redis begin/done (_redis*)", r"tiertrace/_redis"),
    ("tiertrace psycopg begin/done (_psycopg*)", r"tiertrace/_psycopg"),
    ("tiertrace chroma begin/done (_chroma)", r"tiertrace/_chroma"),
    ("tiertrace TieredMemory (_memory, _tiered)", r"tiertrace/_(memory|tiered)"),
    ("tiertrace recorder + wrapper (_access, other)", r"tiertrace/"),
)
OTHERS = (
    ("contrib instrumentation + OTel SDK/API", r"opentelemetry/"),
    ("wrapt", r"/wrapt/"),
)
CLIENT_CALL = "the client call itself (redis-py, psycopg, chromadb, asyncio, sockets)"
LOOP = "the loop itself, interpreter"
_IDLE = re.compile(r"\b(wait|_wait_for_tstate_lock|sleep|select|poll)\b")
_FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")


def _frames(stack: str) -> list[tuple[str, str, str]]:
    out = []
    for frame in stack.split(";"):
        m = _FRAME.match(frame)
        out.append((m.group(1), m.group(2), m.group(3)) if m else (frame, "", ""))
    return out


def _where(func: str, file: str, lineno: str) -> str:
    return f"{func} ({file.split('site-packages/')[-1].split('/src/')[-1]}:{lineno})"


def classify(frames: list[tuple[str, str, str]]) -> tuple[str, str]:
    """(category, innermost frame) of one sample's stack (root first)."""
    leaf = _where(*frames[-1])
    ours = [i for i, (_, file, _) in enumerate(frames) if "/tiertrace/" in file]
    if not ours:
        for func, file, lineno in reversed(frames):
            if CLIENT.search(file):
                return CLIENT_CALL, leaf
            for name, rx in OTHERS:
                if re.search(rx, file):
                    return name, _where(func, file, lineno)
        return LOOP, leaf
    last = ours[-1]
    if last + 1 < len(frames):
        func, file, _ = frames[last + 1]
        if "/opentelemetry/" in file:
            name = next((n for n, rx in OTEL_ENTRY if re.search(rx, func)), "OTel API, other calls")
            return name, leaf
        if CLIENT.search(file):
            return CLIENT_CALL, leaf
    own_file = frames[last][1]
    return next(n for n, rx in OWN if re.search(rx, own_file)), leaf


def profile_report(path: str, overhead_us: float | None) -> None:
    """Summarise a py-spy file (``--format raw --threads --full-filenames``, no ``--idle``).

    Samples are those in which the calling thread was on CPU, inside the profiled loop. py-spy's
    interruptions inflate the time spent in system calls (the client call itself), so the
    instrumentation categories are also given as shares of the instrumentation's samples only;
    ``overhead_us`` (the measured CPU overhead per call, from the benchmark's CPU table) turns
    those shares into µs per call.
    """
    totals: dict[str, int] = {}
    lines: dict[str, int] = {}
    main_total = worker_active = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = _frames(stack)
            if "MainThread" not in frames[0][0]:
                if not _IDLE.search(frames[-1][0]):
                    worker_active += count
                continue
            if not any(fn.startswith("_profiled_loop") for fn, _, _ in frames):
                continue  # start-up, warm-up
            main_total += count
            category, where = classify(frames)
            totals[category] = totals.get(category, 0) + count
            if category not in (CLIENT_CALL, LOOP):
                lines[where] = lines.get(where, 0) + count

    ours = sum(c for n, c in totals.items() if n not in (CLIENT_CALL, LOOP))

    def fmt(count: int, instrumentation: bool = True) -> str:
        share = count / main_total if main_total else 0.0
        text = f"{share * 100:5.1f} % of all"
        if instrumentation and ours:
            part = count / ours
            text += f"  {part * 100:5.1f} % of instr."
            if overhead_us:
                text += f" {part * overhead_us:6.2f} µs"
        return text

    print(f"{path}: {main_total} on-CPU samples of the profiled loop (main thread)")
    for name, count in sorted(totals.items(), key=lambda kv: -kv[1]):
        own = name not in (CLIENT_CALL, LOOP)
        print(f"  {fmt(count, own):<44}  {name}")
    print(f"  {fmt(worker_active, False):<44}  other threads (batch processor workers), active")
    print("hottest innermost frames of the instrumentation:")
    for where, count in sorted(lines.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {fmt(count):<44}  {where}")


# -- main --------------------------------------------------------------------------------------
class Services:
    """The private redis-server, the PostgreSQL database and the Chroma collection of a run."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.cpu = pin_cpu()
        self.server = RedisServer(self.cpu)
        self.db: PgDatabase | None = None
        self.chroma: Chroma | None = None
        self.loop = asyncio.new_event_loop()
        try:
            self.db = PgDatabase()
            log(f"redis-server :{self.server.port}, database {self.db.name}; loading Chroma")
            self.chroma = Chroma()
            seed_redis(self.server.port)
        except BaseException:
            self.stop()
            raise
        self.env = Env(self.server.port, self.db.dsn, self.chroma, self.loop, self.cpu)

    def stop(self) -> None:
        self.loop.close()
        self.server.stop()
        if self.db is not None:
            self.db.drop()
        if self.chroma is not None:
            self.chroma.stop()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="5 short repetitions (< 2 minutes)")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--reps", type=int, help="repetitions (default 10, quick 5)")
    ap.add_argument("--target-ms", type=float, help="raw duration of one timed batch")
    ap.add_argument("--no-throughput", action="store_true", help="skip the throughput runs")
    ap.add_argument("--only", help="comma-separated operation names (default: all)")
    ap.add_argument("--profile", choices=CONFIGS, help="only loop one operation (for py-spy)")
    ap.add_argument("--op", default="redis_get_hit", help="operation of --profile")
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of --profile")
    ap.add_argument("--gc", action="store_true", help="--profile with the collector on")
    ap.add_argument("--profile-report", metavar="FILE", help="summarise a py-spy raw file")
    ap.add_argument("--overhead-us", type=float, help="CPU overhead per call to distribute")
    args = ap.parse_args(argv)
    if args.profile_report:
        profile_report(args.profile_report, args.overhead_us)
        return 0
    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)

    if args.profile:
        services = Services(log)
        try:
            profile_loop(services.env, args.profile, args.op, args.seconds, args.gc)
        finally:
            services.stop()
        return 0

    plan = Plan(
        reps=args.reps or (5 if args.quick else 10),
        target_s=(args.target_ms or (30.0 if args.quick else 150.0)) / 1000,
        throughput_s=2.0 if args.quick else 5.0,
        throughput_rounds=1 if args.quick else 2,
    )
    if args.only:
        wanted = set(args.only.split(","))
        plan.ops = tuple(op for op in OPS if op.name in wanted)
    pristine = Pristine()
    services = Services(log)
    env = services.env
    try:
        gc.collect()
        gc.freeze()  # setup objects out of the collector's way
        estimate = calibrate(env, plan)
        per_rep = sum(plan.sizes[o.name] * estimate[o.name] for o in plan.ops) * 1.1 / 1e6
        log(f"calibrated; about {per_rep * 4 * plan.reps * 1.6:.0f} s of timed batches")
        samples, produced = measure(env, plan, pristine, log)
        ops = summarize(samples)
        tput = None if args.no_throughput else throughput(env, plan, log)
        pristine.check()
        assert services.db is not None
        report = {
            "machine": machine(services.server.version, services.db.version, services.cpu),
            "method": {
                "repetitions": plan.reps,
                "target_batch_ms": plan.target_s * 1000,
                "calls_per_batch": plan.sizes,
                "quick": args.quick,
                "load_average": os.getloadavg(),
                "telemetry_produced": produced,
                "elapsed_s": time.monotonic() - started,
            },
            "ops": ops,
            "throughput": tput,
        }
        report["goals"] = goals(ops, tput)
    finally:
        services.stop()
    print_report(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    meth = report["method"]
    print(
        f"\n{m['cpu_model']}, {m['cores']} cores (pinned to CPU {m['pinned_cpu']}), "
        f"Python {m['python']}, {m['redis_server'].split(' sha')[0]}, PostgreSQL {m['postgresql']}"
    )
    print(
        f"median of {meth['repetitions']} interleaved repetitions, "
        f"~{meth['target_batch_ms']:.0f} ms raw batches; +µs = median paired difference to raw\n"
    )
    print(table(report["ops"]))
    print("\nCPU time of the calling thread (what other load on the machine disturbs least):\n")
    print(cpu_table(report["ops"]))
    tput = report["throughput"]
    if tput:
        print("\nthroughput (Redis GET hit, ops/s):")
        for kind in ("threads", "tasks"):
            t = tput[kind]
            print(
                f"  {t['label']:<40} raw {t['raw_ops_s']:>9.0f}   full {t['full_ops_s']:>9.0f}"
                f"   kept {t['kept_pct']:.1f} %"
            )
    print("\ngoals:")
    for g in report["goals"]:
        value = _f(g["value"], "{:.2f}")
        mark = "ok  " if g["met"] else "MISS"
        sign = "≥" if g["unit"] == "%" and "throughput" in g["goal"] else "≤"
        print(f"  {mark} {g['goal']}: {value} {g['unit']} (goal {sign} {g['limit']} {g['unit']})")
    print(f"\nelapsed {meth['elapsed_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
