"""One worker process of tests/integration/test_many_processes.py.

Run as ``python workers.py CONFIG.json``.

A three-tier workload on real stores, exporting with ``tiertrace.init(exporter="prometheus",
prometheus_port=<its own port>)``: `tiertrace.TieredMemory` read-throughs over the test's
private Redis (keys under a prefix of this worker's own), a table of the test's PostgreSQL
database (two thirds of the corpus) and an embedded Chroma collection in a directory of its
own (all of the corpus). Redis entries live 1 s, so hot queries keep hitting Redis while cold
ones fall through to PostgreSQL or Chroma.

Phases, driven through files in the worker's directory so the test can line them up with the
Prometheus scrapes:

1. warm-up: lookups until each of the three tiers has served one (every lookup series then
   exists on /metrics), then ``ready.json`` = ``tiertrace.stats()``;
2. wait for the file ``go``;
3. ``lookups`` lookups at ``rate`` per second, then ``stats.json`` = ``tiertrace.stats()``;
4. stay alive, idle, serving /metrics, until SIGTERM.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

N_QUERIES = 90
ZIPF_S = 1.1
SUBJECTS = ("billing", "shipping", "returns", "passwords", "invoices", "discounts")
ASPECTS = ("say", "ask", "prefer", "dislike", "mention", "forget", "expect", "remember", "report",
           "question", "doubt", "repeat", "confirm", "deny", "note")  # fmt: skip


def question(i: int) -> str:
    """Query ``i`` of the corpus (words only: `TieredMemory` keys normalize digits away)."""
    return f"what did the user {ASPECTS[i // len(SUBJECTS)]} about {SUBJECTS[i % len(SUBJECTS)]}"


def in_postgres(i: int) -> bool:
    """Two thirds of the corpus are in PostgreSQL; all of it is in Chroma."""
    return i % 3 != 2


def _write(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def main(config_path: str) -> None:
    import chromadb
    import psycopg
    import redis
    from chromadb.config import Settings
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    import tiertrace
    from tiertrace import HashingEmbeddingFunction, TieredMemory

    cfg = json.loads(Path(config_path).read_text())
    home = Path(cfg["dir"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    tiertrace.init(exporter="prometheus", prometheus_port=cfg["port"])

    r = redis.Redis.from_url(cfg["redis_url"])
    pg = psycopg.connect(cfg["pg_dsn"], autocommit=True)
    chroma = chromadb.PersistentClient(
        path=str(home / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    embed = HashingEmbeddingFunction()
    with suppress_instrumentation():
        collection = chroma.get_or_create_collection("many_memories", embedding_function=embed)
        collection.add(
            ids=[f"q{i}" for i in range(N_QUERIES)],
            documents=[f"answer {i}: {question(i)}" for i in range(N_QUERIES)],
        )
    memory = TieredMemory(
        redis=r,
        postgres=pg,
        sql=f"SELECT body FROM {cfg['table']} WHERE query = %s",
        chroma=collection,
        embedding_function=embed,
        ttl_s={"redis": 1},
        key_prefix=cfg["key_prefix"],
    )
    queries = [question(i) for i in range(N_QUERIES)]

    # 1. warm-up: a query of each kind twice (PostgreSQL or Chroma, then Redis)
    for i in (0, 2, 0, 2):
        memory.track_memory_access(queries[i], query_type="faq")
    served = tiertrace.stats()["total"]["served_by"]
    assert all(served[t] > 0 for t in ("redis", "postgresql", "chroma")), served
    _write(home / "ready.json", tiertrace.stats())

    # 2. wait for the test
    while not (home / "go").exists():
        if stop.wait(0.05):
            return

    # 3. the measured phase
    rng = random.Random(cfg["seed"])
    weights = [1 / (i + 1) ** ZIPF_S for i in range(N_QUERIES)]
    interval, next_at = 1.0 / cfg["rate"], time.monotonic()
    for _ in range(cfg["lookups"]):
        memory.track_memory_access(rng.choices(queries, weights)[0], query_type="faq")
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    tiertrace.flush()
    _write(home / "stats.json", tiertrace.stats())

    # 4. idle until told to stop, still serving /metrics
    stop.wait()
    tiertrace.shutdown()
    r.close()
    pg.close()


if __name__ == "__main__":
    main(sys.argv[1])
