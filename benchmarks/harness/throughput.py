"""Throughput: 8 threads sharing one ``redis.Redis`` and 200 asyncio tasks sharing one
``redis.asyncio.Redis`` on a ``BlockingConnectionPool`` run GET hits for a fixed time under raw,
metrics and full (rotated order each round), with the garbage collector on as in a service.

Reported per load: ops/s per configuration (median over the rounds) and the share of the raw
throughput that full (``kept_pct``) and metrics (``metrics_kept_pct``) keep. On one CPU this is
the ratio of CPU cost per GET.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio

from .modes import activate
from .services import Env
from .timing import median, rotated
from .workload import HIT_KEY

THREADS, TASKS = 8, 200
CONFIGS = ("raw", "metrics", "full")
LOADS = (("threads", f"{THREADS} threads, redis.Redis"), ("tasks", f"{TASKS} asyncio tasks"))


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


async def tasks_throughput(port: int, n_tasks: int, seconds: float) -> float:
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


def throughput(env: Env, seconds: float, rounds: int, log: Callable[[str], None]) -> dict[str, Any]:
    runs: dict[str, dict[str, list[float]]] = {kind: {c: [] for c in CONFIGS} for kind, _ in LOADS}
    port = env.redis_port
    for rnd in range(rounds):
        for config in rotated(CONFIGS, rnd):
            active = activate(config)
            threads_throughput(port, THREADS, min(0.5, seconds))  # warm-up
            runs["threads"][config].append(threads_throughput(port, THREADS, seconds))
            env.loop.run_until_complete(tasks_throughput(port, TASKS, 0.5))
            runs["tasks"][config].append(
                env.loop.run_until_complete(tasks_throughput(port, TASKS, seconds))
            )
            active.close()
        log(f"  throughput round {rnd + 1}/{rounds} done")
    out: dict[str, Any] = {"seconds_per_run": seconds, "rounds": rounds}
    for kind, label in LOADS:
        raw = median(runs[kind]["raw"])
        full = median(runs[kind]["full"])
        metrics = median(runs[kind]["metrics"])
        out[kind] = {
            "label": label + " GET hit",
            "raw_ops_s": raw,
            "full_ops_s": full,
            "metrics_ops_s": metrics,
            "kept_pct": 100.0 * full / raw,
            "metrics_kept_pct": 100.0 * metrics / raw,
            "runs": runs[kind],
        }
    return out
