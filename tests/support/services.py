"""The one way the tests get a free port, a private Redis and a PostgreSQL database.

Everything here goes through the implementation behind ``tiertrace demo --start-services``
(`tiertrace._cli.services`): `free_port`, ``PrivateServices.start_redis`` and
``PrivateServices.start_postgres``. What this module adds is only what tests need on top:
killing, pausing and restarting a Redis server on the same port, and a database of its own
for each test session, and the tables the tests read from it (`fill_table`, `drop_table`).

Set-up traffic runs under ``suppress_instrumentation()``: tiertrace records none of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import psycopg
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation

from support.tools import install_hint
from tiertrace._cli.services import (
    PrivateServices,
    Unavailable,
    check_postgres,
    check_redis,
    free_port,
)

__all__ = [
    "PG_ADMIN",
    "PrivateRedis",
    "drop_table",
    "fill_table",
    "free_port",
    "postgres_server",
    "private_database",
]

# A PostgreSQL server the tests may create databases on; started privately when it does not answer.
PG_ADMIN = os.environ.get("TIERTRACE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


class PrivateRedis:
    """A private ``redis-server`` on a free loopback port: ``PrivateServices.start_redis``.

    `kill`, `pause`/`resume` and `start` again (same command line, same port) let a test fault
    the server under a live client; `stop` removes it and its directory.
    """

    def __init__(self) -> None:
        self._services = PrivateServices()
        self._argv: list[str] | None = None
        self.url = ""
        self.port = 0

    def start(self) -> str:
        """Start the server (again, on the same port, once it was killed); return its URL."""
        with suppress_instrumentation():
            try:
                if self._argv is None:
                    self.url = self._services.start_redis()
                    assert self._services.redis is not None
                    self._argv = list(self._services.redis.args)  # type: ignore[arg-type]
                    self.port = int(urlsplit(self.url).port or 0)
                else:
                    self._services.redis = subprocess.Popen(
                        self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                    # the readiness wait of `PrivateServices.start_redis`, on the same port
                    self._services.wait(lambda: check_redis(self.url), "redis-server")
            except Unavailable as error:
                pytest.fail(f"{error} ({install_hint('redis-server')})")
        return self.url

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._services.redis is not None, "redis-server is not running"
        return self._services.redis

    def kill(self) -> None:
        """SIGKILL: the server dies mid-whatever; `start` brings it back on the same port."""
        proc = self._services.redis
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: alive but silent."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        proc = self._services.redis
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        self._services.stop()


@contextlib.contextmanager
def postgres_server(admin_dsn: str = PG_ADMIN) -> Iterator[str]:
    """An admin DSN: ``admin_dsn`` when it answers, else a private cluster (``initdb``)."""
    try:
        check_postgres(admin_dsn)
    except Unavailable as unreachable:
        with PrivateServices() as services:
            try:
                dsn = services.start_postgres()
            except Unavailable as error:
                pytest.fail(f"{unreachable}; {error} ({install_hint('postgresql')})")
            yield dsn
        return
    yield admin_dsn


@contextlib.contextmanager
def private_database(admin_dsn: str) -> Iterator[str]:
    """A database created on ``admin_dsn``'s server for one test session, dropped after it."""
    name = f"tiertrace_test_{uuid.uuid4().hex[:10]}"
    with suppress_instrumentation(), psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with suppress_instrumentation(), psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill_table(dsn: str, name: str, columns: str, rows: Iterable[Sequence[object]]) -> str:
    """A fresh table ``name (columns)`` holding ``rows``, dropped first if it exists; its name."""
    with suppress_instrumentation(), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(f"CREATE TABLE {name} ({columns})")
        rows = list(rows)
        if rows:
            placeholders = ", ".join(["%s"] * len(rows[0]))
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {name} VALUES ({placeholders})", rows)
    return name


def drop_table(dsn: str, name: str) -> None:
    with suppress_instrumentation(), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
