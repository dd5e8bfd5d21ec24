"""Soak test: does tiertrace hold its memory, exported series and file descriptors flat?

Usage::

    python benchmarks/soak.py [--minutes 30] [--every 10] [--json FILE] [--tracemalloc M]

Runs mixed cache-aside traffic (no `TieredMemory`: the application's own code, grouped by
implicit lookups) against a private redis-server and a PostgreSQL database created for the run
(127.0.0.1:5432, user postgres; ``TIERTRACE_BENCH_PG`` to point elsewhere; see
`harness.services`), with tiertrace in full mode: ``exporter="prometheus"`` on a free port, an
ALWAYS_ON tracer provider with a batch processor into a no-op exporter and a logger provider
likewise. The traffic:

* 4 threads: Redis GET of a Zipf-distributed key (5 key templates, 50,000 ids); on a miss a
  PostgreSQL SELECT by primary key and a Redis SET with a 20 s TTL (the fill); 5 % of requests
  are writes (UPDATE + DEL); 10 % are MGETs of 5 keys; a third run inside an explicit
  ``tiertrace.lookup(query_type=...)`` with 80 query types (more than the 50 kept);
* 1 asyncio loop: the same over ``redis.asyncio`` and a psycopg ``AsyncConnectionPool``, each
  request in a task of its own (per-task lookup state must not pile up).

``--tracemalloc M`` starts Python's ``tracemalloc`` M minutes in and, at the end, prints the 15
source lines whose live allocations grew most since then (slower: use it to find what grows).

Every ``--every`` seconds it samples the process's resident set size, the memory the C
allocator has handed out and not had back (``malloc_mb``, glibc only), Python's allocated memory
blocks (``py_blocks``), open file descriptors, the number of series on ``/metrics`` (sample
lines, and those of ``tiertrace_*``), tiertrace's pending implicit lookups and the requests done
so far. RSS growing while ``malloc_mb`` and ``py_blocks`` stay flat is memory the allocators
hold, not live data. At the end it prints the samples and the slope per minute of each (least
squares, over the whole run, after the first quarter and over the last 20 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import random
import sys
import threading
import time
import tracemalloc
import urllib.request
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from harness import tiertrace
from harness.modes import CountingLogExporter, CountingSpanExporter
from harness.services import PG_ROWS, PgDatabase, RedisServer, free_port

TEMPLATES = ("user:{}:profile", "session:{}", "doc:{}:body", "agent:{}:state", "chat:{}:summary")
IDS = 50_000
ROWS = PG_ROWS  # rows of bench_items (see harness.services.PgDatabase)
TTL_S = 20
QUERY_TYPES = tuple(f"qt{i}" for i in range(80))
SELECT = "SELECT body FROM bench_items WHERE id = %s"
UPDATE = "UPDATE bench_items SET body = %s WHERE id = %s"


def zipf_id(rng: random.Random) -> int:
    return min(int(rng.paretovariate(1.1)), IDS)


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.errors = 0
        self.lock = threading.Lock()

    def add(self, n: int = 1, errors: int = 0) -> None:
        with self.lock:
            self.n += n
            self.errors += errors


def request(r: redis.Redis, pool: ConnectionPool, rng: random.Random) -> None:
    ident = zipf_id(rng)
    key = rng.choice(TEMPLATES).format(ident)
    roll = rng.random()
    if roll < 0.05:  # write: update the row, invalidate the cache
        with pool.connection() as conn:
            conn.execute(UPDATE, (f"body {rng.random()}", ident % ROWS + 1))
        r.delete(key)
        return
    if roll < 0.15:
        keys = [rng.choice(TEMPLATES).format(zipf_id(rng)) for _ in range(5)]
        r.mget(keys)
        return
    value = r.get(key)
    if value is None:
        with pool.connection() as conn:
            row = conn.execute(SELECT, (ident % ROWS + 1,)).fetchone()
        r.set(key, row[0] if row else "", ex=TTL_S)


def worker(port: int, dsn: str, seed: int, stop: threading.Event, done: Counter) -> None:
    rng = random.Random(seed)
    r = redis.Redis(port=port)
    pool = ConnectionPool(dsn, min_size=1, max_size=2, kwargs={"autocommit": True}, open=True)
    try:
        while not stop.is_set():
            try:
                if rng.random() < 0.33:
                    with tiertrace.lookup(query_type=rng.choice(QUERY_TYPES)):
                        request(r, pool, rng)
                else:
                    request(r, pool, rng)
                done.add()
            except Exception:
                done.add(errors=1)
    finally:
        pool.close()
        r.close()


async def arequest(ar: Any, pool: AsyncConnectionPool, rng: random.Random) -> None:
    ident = zipf_id(rng)
    key = rng.choice(TEMPLATES).format(ident)
    value = await ar.get(key)
    if value is None:
        async with pool.connection() as conn:
            cur = await conn.execute(SELECT, (ident % ROWS + 1,))
            row = await cur.fetchone()
        await ar.set(key, row[0] if row else "", ex=TTL_S)


async def async_worker(port: int, dsn: str, stop: threading.Event, done: Counter) -> None:
    rng = random.Random(99)
    pool_r = redis.asyncio.BlockingConnectionPool(port=port, max_connections=20)
    ar = redis.asyncio.Redis(connection_pool=pool_r)
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False)
    await pool.open()
    try:
        while not stop.is_set():
            tasks = [asyncio.create_task(arequest(ar, pool, rng)) for _ in range(20)]
            results = await asyncio.gather(*tasks, return_exceptions=True)
            errors = sum(1 for x in results if isinstance(x, BaseException))
            done.add(len(results) - errors, errors)
    finally:
        await pool.close()
        await ar.aclose()
        await pool_r.disconnect()


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _mallinfo2() -> Any:
    """glibc's ``mallinfo2`` (2.33+), or None where it is missing (musl, macOS)."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    fn.restype = MallInfo2
    return fn


MALLINFO2 = _mallinfo2()


def malloc_in_use_mb() -> float:
    """Bytes the C allocator has handed out and not had back (mmapped blocks included), in MB."""
    if MALLINFO2 is None:
        return float("nan")
    info = MALLINFO2()
    return (info.uordblks + info.hblkhd) / 2**20


def scrape(port: int) -> list[str]:
    """The sample lines of ``/metrics`` (one per exported series)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def families(lines: Sequence[str]) -> dict[str, int]:
    """Series per metric family (``_bucket``/``_sum``/``_count`` folded into the histogram)."""
    out: dict[str, int] = {}
    for ln in lines:
        name = ln.split("{", 1)[0].split(" ", 1)[0]
        for suffix in ("_bucket", "_sum", "_count", "_created"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        out[name] = out.get(name, 0) + 1
    return out


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys over xs (per unit of xs)."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None


FIELDS = (
    "rss_mb",
    "malloc_mb",
    "py_blocks",
    "fds",
    "series",
    "tiertrace_series",
    "pending_lookups",
    "requests",
)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=30.0, help="duration (default 30)")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--json", metavar="FILE", help="write the samples and slopes as JSON")
    ap.add_argument("--tracemalloc", metavar="M", type=float, help="trace allocations after M min")
    args = ap.parse_args(argv)
    first: tracemalloc.Snapshot | None = None

    server = RedisServer(None)
    db = PgDatabase()
    port = free_port()
    tp = TracerProvider(sampler=ALWAYS_ON)
    tp.add_span_processor(BatchSpanProcessor(CountingSpanExporter()))
    lp = LoggerProvider()
    lp.add_log_record_processor(BatchLogRecordProcessor(CountingLogExporter()))
    stop = threading.Event()
    done = Counter()
    samples: list[dict[str, float]] = []
    try:
        handle = tiertrace.init(
            exporter="prometheus",
            prometheus_port=port,
            tracer_provider=tp,
            logger_provider=lp,
            instrument=["redis", "psycopg"],
        )
        threads = [
            threading.Thread(target=worker, args=(server.port, db.dsn, i, stop, done))
            for i in range(4)
        ]
        threads.append(
            threading.Thread(
                target=lambda: asyncio.run(async_worker(server.port, db.dsn, stop, done))
            )
        )
        for t in threads:
            t.start()
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        print(f"soak: {args.minutes:g} min, /metrics on 127.0.0.1:{port}", flush=True)
        print(f"{'t (s)':>7}" + "".join(f"{f:>18}" for f in FIELDS), flush=True)
        while True:
            now = time.monotonic()
            lines = scrape(port)
            series, ours = len(lines), sum(1 for ln in lines if ln.startswith("tiertrace_"))
            sample = {
                "t_s": now - t0,
                "rss_mb": rss_mb(),
                "malloc_mb": malloc_in_use_mb(),
                "py_blocks": float(sys.getallocatedblocks()),
                "fds": float(len(os.listdir("/proc/self/fd"))),
                "series": float(series),
                "tiertrace_series": float(ours),
                "pending_lookups": float(len(handle.grouper.pending)),
                "requests": float(done.n),
            }
            samples.append(sample)
            print(
                f"{sample['t_s']:>7.0f}" + "".join(f"{sample[f]:>18.1f}" for f in FIELDS),
                flush=True,
            )
            if args.tracemalloc is not None and first is None and now >= t0 + args.tracemalloc * 60:
                tracemalloc.start(4)
                first = tracemalloc.take_snapshot()
            if now >= end:
                break
            time.sleep(min(args.every, max(0.0, end - now)))
        stop.set()
        for t in threads:
            t.join(timeout=30)
        if first is not None:
            grown = tracemalloc.take_snapshot().compare_to(first, "lineno")
            print("\nlive allocations grown most since tracing began:")
            for stat in grown[:15]:
                print(
                    f"  {stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+8d}  {stat.traceback}"
                )
    finally:
        stop.set()
        tiertrace.shutdown()
        tp.shutdown()
        lp.shutdown()
        server.stop()
        db.drop()

    minutes = [s["t_s"] / 60 for s in samples]
    settled = [i for i, m in enumerate(minutes) if m >= minutes[-1] / 4]
    last20 = [i for i, m in enumerate(minutes) if m >= minutes[-1] - 20]  # the goal: <= 0.1 MB
    per_family = families(lines)
    report: dict[str, Any] = {
        "minutes": args.minutes,
        "errors": done.errors,
        "samples": samples,
        "series_per_family": per_family,
    }
    rate = done.n / max(samples[-1]["t_s"], 1e-9)
    print(f"\nrequests: {done.n} ({rate:.0f}/s), errors {done.errors}")
    print(f"{'slope per minute':<22}{'whole run':>14}{'after 1st quarter':>20}{'last 20 min':>14}")
    for f in FIELDS[:-1]:
        whole = slope(minutes, [s[f] for s in samples])
        late = slope([minutes[i] for i in settled], [samples[i][f] for i in settled])
        tail = slope([minutes[i] for i in last20], [samples[i][f] for i in last20])
        report[f"{f}_per_min"] = {"whole": whole, "after_first_quarter": late, "last_20_min": tail}
        cells = ["—" if v is None else f"{v:+.3f}" for v in (whole, late, tail)]
        print(f"{f:<22}{cells[0]:>14}{cells[1]:>20}{cells[2]:>14}")
    print("series per metric family at the end:")
    for name, count in sorted(per_family.items(), key=lambda kv: -kv[1]):
        print(f"  {count:>6}  {name}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
