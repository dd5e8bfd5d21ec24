"""Real services for the integration tests, private to the test session.

A ``redis-server`` on a free loopback port and a PostgreSQL database created for the session
(on ``TIERTRACE_TEST_PG``'s server, default ``postgres@127.0.0.1:5432``, or on a private
cluster when that does not answer), both started through `support.services`; a ``chroma run``
server (`support.chroma`) and a live Prometheus with a workload (`support.prometheus`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from support.chroma import chroma_server  # noqa: F401  (session fixture)
from support.prometheus import live_prometheus  # noqa: F401  (live Prometheus + workload)
from support.services import PrivateRedis, fill_table, postgres_server, private_database


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server on a free loopback port, stopped after the session."""
    server = PrivateRedis()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()  # housekeeping: never an access
    yield client
    client.close()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A PostgreSQL database created for this test session and dropped after it."""
    with postgres_server() as admin, private_database(admin) as dsn:
        yield dsn


@pytest.fixture
def table(pg_dsn: str) -> str:
    """A fresh ``memories(id int primary key, body text)`` table with rows 1..3."""
    rows = [(1, "one"), (2, "two"), (3, "three")]
    return fill_table(pg_dsn, "memories", "id int PRIMARY KEY, body text", rows)


@pytest.fixture
def chroma_client(tmp_path: Path) -> Iterator[Any]:
    """An embedded Chroma (``PersistentClient``) in a temporary directory."""
    import chromadb  # only for the tests that ask for it
    from chromadb.api.shared_system_client import SharedSystemClient
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    yield client
    SharedSystemClient.clear_system_cache()


@pytest.fixture
def contrib() -> Iterator[list[Any]]:
    """A list a test appends the contrib instrumentors it activates to; uninstrumented after."""
    active: list[Any] = []
    yield active
    for inst in active:
        if inst.is_instrumented_by_opentelemetry:
            inst.uninstrument()
