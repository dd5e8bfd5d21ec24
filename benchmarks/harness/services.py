"""The stores a benchmark runs against: started or located for the run, removed at its end.

* Redis: a private ``redis-server`` on a free loopback port
  (``tiertrace._cli.services.PrivateServices``), optionally pinned to the benchmark's CPU.
* PostgreSQL: a database created for the run on the server at ``TIERTRACE_BENCH_PG`` (default
  ``postgresql://postgres@127.0.0.1:5432/postgres``) and dropped at the end; when that server does
  not answer and ``initdb``/``pg_ctl`` are installed, a private cluster on a free port instead.
* Chroma: an embedded ``PersistentClient`` in a temporary directory holding 5,000 random
  384-dimensional vectors with explicit embeddings (no embedding model).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from tiertrace._cli.services import (
    PrivateServices,
    Unavailable,
    can_start,
    check_postgres,
    free_port,
)

__all__ = [
    "PG_ADMIN",
    "Chroma",
    "Env",
    "PgDatabase",
    "RedisServer",
    "Services",
    "free_port",
    "pin",
    "pin_cpu",
]

PG_ADMIN = os.environ.get("TIERTRACE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
N_VECTORS, DIM = 5000, 384
PG_ROWS = 10_000  # rows of bench_items


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


class RedisServer:
    """A private redis-server on a free loopback port, on the benchmark's CPU (see `pin`)."""

    def __init__(self, cpu: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
        self._private = PrivateServices()
        try:
            self.url = self._private.start_redis()
        except Unavailable as error:
            self._private.stop()
            raise SystemExit(str(error)) from None
        assert self._private.redis is not None
        self.pid = self._private.redis.pid
        pin(self.pid, cpu)
        self.port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])
        self.version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()

    def stop(self) -> None:
        self._private.stop()


def postgres_admin(log: Callable[[str], None] | None = None) -> tuple[str, PrivateServices | None]:
    """The admin DSN of a PostgreSQL server for the run: ``PG_ADMIN`` when it answers, else a
    private cluster (returned too, to be stopped by the caller)."""
    try:
        check_postgres(PG_ADMIN)
        return PG_ADMIN, None
    except Unavailable as error:
        if not can_start()["postgresql"]:
            raise SystemExit(f"{error} (or set TIERTRACE_BENCH_PG)") from None
        if log is not None:
            log(f"{error}; starting a private PostgreSQL cluster")
    private = PrivateServices()
    try:
        return private.start_postgres(), private
    except BaseException:
        private.stop()
        raise


class PgDatabase:
    """A PostgreSQL database for this run, with ``bench_items``; dropped by `drop`."""

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.admin, self._private = postgres_admin(log)
        self.name = f"tiertrace_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
            self.version = str(admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        self.dsn = self.admin.rsplit("/", 1)[0] + f"/{self.name}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE bench_items (id int PRIMARY KEY, query text NOT NULL UNIQUE,"
                " body text NOT NULL)"
            )
            conn.execute(
                "INSERT INTO bench_items SELECT i, 'query ' || i, repeat('x', 100)"
                f" FROM generate_series(1, {PG_ROWS}) AS i"
            )
            conn.execute("ANALYZE bench_items")

    def drop(self) -> None:
        try:
            with psycopg.connect(self.admin, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            if self._private is not None:
                self._private.stop()


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


@dataclass
class Env:
    """What the operations of a run need: where the stores are, the loop, the pinned CPU."""

    redis_port: int
    dsn: str
    chroma: Chroma
    loop: asyncio.AbstractEventLoop
    cpu: int | None


class Services:
    """The private redis-server, the PostgreSQL database and the Chroma collection of a run.

    ``seed`` (called with the Redis port) fills Redis once everything is up.
    """

    def __init__(
        self, log: Callable[[str], None], seed: Callable[[int], Any] | None = None
    ) -> None:
        self.cpu = pin_cpu()
        self.server = RedisServer(self.cpu)
        self.db: PgDatabase | None = None
        self.chroma: Chroma | None = None
        self.loop = asyncio.new_event_loop()
        try:
            self.db = PgDatabase(log)
            log(f"redis-server :{self.server.port}, database {self.db.name}; loading Chroma")
            self.chroma = Chroma()
            if seed is not None:
                seed(self.server.port)
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
