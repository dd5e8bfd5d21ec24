"""Faults of the services and of the telemetry backend: a Redis server killed mid-workload and
restarted on the same port, a paused Redis, a PostgreSQL backend terminated mid-query, a Chroma
server killed, an OTLP endpoint that refuses or never answers.

In every case the application sees exactly the exception its client raises without tiertrace,
the failed access is an ERROR span with ``error.type``, and the counts afterwards are exact:
successful plus failed accesses equal the calls made, nothing lost and nothing counted twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import chromadb
import httpx
import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

import tiertrace
from support.chroma import ChromaProcess
from support.services import PrivateRedis, free_port
from support.tracebacks import raised_by

LOOKUP = "tiertrace.lookup.duration"
ABSENT = "<absent>"


# -- services of our own, to kill and restart -----------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this test alone, killed, paused and restarted (same port) at will."""
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_chroma() -> Iterator[ChromaProcess]:
    """``chroma run`` of this test alone; its data directory survives a kill and restart."""
    server = ChromaProcess(prefix="tiertrace-faults-chroma-")
    server.start()
    yield server
    server.stop()
    SharedSystemClient.clear_system_cache()  # no cached client pointing at a dead port


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def error_spans(telemetry: Any) -> list[Any]:
    return [s for s in telemetry.access_spans() if s.status.status_code is StatusCode.ERROR]


def assert_error_spans(telemetry: Any, error_type: str, count: int) -> list[Any]:
    """``count`` ERROR spans with ``error.type``, no hit and the exception event."""
    failed = [s for s in error_spans(telemetry) if s.attributes["error.type"] == error_type]
    assert len(failed) == count
    for span in failed:
        assert "tiertrace.hit" not in span.attributes
        assert [e.name for e in span.events] == ["exception"]
    return failed


def lookups(telemetry: Any) -> int:
    return int(telemetry.count(LOOKUP))


# -- Redis -------------------------------------------------------------------------------------


class RedisWorkload:
    """SET / GET hit / GET miss / MULTI, round-robin, with the user's view of every call."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.ok: Counter[tuple[str, bool | None]] = Counter()  # (operation, hit)
        self.failed: Counter[tuple[str, str]] = Counter()  # (operation, exception type)
        self.types: set[type[BaseException]] = set()
        self.calls = self.reads = 0
        self.stop = threading.Event()

    def one(self, i: int) -> None:
        c, kind = self.client, i % 4
        op = ("SET", "GET", "GET", "MULTI")[kind]
        try:
            if kind == 0:
                c.set(f"kill:{i % 64}", "v")
                hit: bool | None = None
            elif kind == 1:
                hit = c.get(f"kill:{(i - 1) % 64}") is not None
            elif kind == 2:
                hit = c.get(f"kill:absent:{i}") is not None
            else:
                with c.pipeline() as pipe:
                    got, _ = pipe.get(f"kill:{(i - 3) % 64}").set(f"kill:{i % 64}", "w").execute()
                hit = got is not None
            self.ok[(op, hit)] += 1
        except redis.RedisError as exc:
            self.failed[(op, type(exc).__name__)] += 1
            self.types.add(type(exc))
        self.calls += 1
        self.reads += kind != 0

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            self.one(i)
            i += 1

    def successes(self) -> int:
        return sum(self.ok.values())

    def failures(self) -> int:
        return sum(self.failed.values())

    def assert_exported(self, telemetry: Any) -> None:
        for (op, hit), n in self.ok.items():
            got = telemetry.access_count(
                db__operation__name=op,
                tiertrace__hit=ABSENT if hit is None else hit,
                error__type=ABSENT,
            )
            assert got == n, (op, hit)
        for (op, error), n in self.failed.items():
            got = telemetry.access_count(
                db__operation__name=op, error__type=error, tiertrace__hit=ABSENT
            )
            assert got == n, (op, error)
        assert telemetry.access_count(error__type=ABSENT) == self.successes()
        assert telemetry.access_count() == self.calls
        total = tiertrace.stats()["total"]["tiers"]["redis"]
        assert (total["accesses"], total["errors"]) == (self.calls, self.failures())


def test_redis_killed_mid_workload_and_restarted_on_the_same_port_loses_no_access(
    make_telemetry: Any, own_redis: PrivateRedis
) -> None:
    telemetry = make_telemetry(instrument=["redis"])
    handle = telemetry.handle

    def client() -> redis.Redis:
        return redis.Redis(
            port=own_redis.port, retry=Retry(NoBackoff(), 1), socket_connect_timeout=2
        )

    work = RedisWorkload(client())
    worker = threading.Thread(target=work.run)
    worker.start()
    try:
        wait_for(lambda: work.successes() >= 400, "400 calls before the kill")
        own_redis.kill()  # SIGKILL while the worker is in the middle of its calls
        wait_for(lambda: work.failures() >= 40, "40 failed calls while Redis is down")
        with suppress_instrumentation():  # the same call without tiertrace: what is raw?
            raw = raised_by(lambda: client().get("kill:1"))
        own_redis.start()  # same port
        before = work.successes()
        wait_for(lambda: work.successes() >= before + 400, "400 calls after the restart")
    finally:
        work.stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()

    # the user saw the client's own exception, nothing else
    assert type(raw) is redis.exceptions.ConnectionError
    assert work.types == {type(raw)}
    # exact counts: successes + failures = calls, per operation and hit
    tiertrace.flush()
    work.assert_exported(telemetry)
    assert_error_spans(telemetry, "ConnectionError", work.failures())
    assert len(error_spans(telemetry)) == work.failures()
    assert lookups(telemetry) == work.reads  # every read (failed ones too) made one lookup
    # still the same tiertrace, still recording after the restart: no re-init
    assert tiertrace.handle() is handle
    c = client()
    c.set("after:restart", "v")
    assert c.get("after:restart") == b"v"
    assert telemetry.access_spans()[-1].name == "GET after:restart"
    assert telemetry.access_spans()[-1].attributes["tiertrace.hit"] is True


async def test_async_redis_killed_and_restarted_gives_exact_counts(
    make_telemetry: Any, own_redis: PrivateRedis
) -> None:
    telemetry = make_telemetry(instrument=["redis"])
    client = aioredis.Redis(port=own_redis.port, retry=AsyncRetry(NoBackoff(), 0))
    raw_client = aioredis.Redis(port=own_redis.port, retry=AsyncRetry(NoBackoff(), 0))
    seen: set[type[BaseException]] = set()
    ok = failed = 0
    try:
        for phase in ("up", "down", "up again"):
            if phase == "down":
                own_redis.kill()
                with suppress_instrumentation():
                    try:
                        await raw_client.get("a:1")
                    except redis.RedisError as exc:
                        raw: BaseException = exc
            elif phase == "up again":
                own_redis.start()
            for i in range(60):
                try:
                    if i % 2:
                        await client.set(f"a:{i}", "v")
                    else:
                        await client.get(f"a:{i + 1}")
                    ok += 1
                except redis.RedisError as exc:
                    seen.add(type(exc))
                    failed += 1
    finally:
        await client.aclose()
        await raw_client.aclose()
    assert seen == {type(raw)} == {redis.exceptions.ConnectionError}
    assert (ok, failed) == (120, 60)
    assert telemetry.access_count(error__type="ConnectionError") == 60
    assert telemetry.access_count(error__type=ABSENT) == 120
    assert_error_spans(telemetry, "ConnectionError", 60)
    assert len(error_spans(telemetry)) == 60


def test_paused_redis_times_out_with_the_clients_own_timeout_error(
    make_telemetry: Any, own_redis: PrivateRedis
) -> None:
    telemetry = make_telemetry(instrument=["redis"])

    def client() -> redis.Redis:
        return redis.Redis(port=own_redis.port, retry=Retry(NoBackoff(), 0), socket_timeout=0.2)

    c = client()
    c.set("p:1", "v")
    own_redis.pause()  # alive but silent
    try:
        with suppress_instrumentation():
            raw = raised_by(lambda: client().get("p:1"))
        exc = raised_by(lambda: c.get("p:1"))
    finally:
        own_redis.resume()
    assert type(exc) is type(raw) is redis.exceptions.TimeoutError
    assert c.get("p:1") == b"v"  # reconnects by itself
    (span,) = assert_error_spans(telemetry, "TimeoutError", 1)
    assert span.name == "GET p:{id}"
    assert telemetry.access_count(db__operation__name="GET", tiertrace__hit=True) == 1
    assert telemetry.access_count() == 3


# -- PostgreSQL --------------------------------------------------------------------------------

SLEEP = "SELECT pg_sleep(5)"


def terminate_when_sleeping(dsn: str, pid: int) -> threading.Thread:
    """From another connection, terminate backend ``pid`` once it is inside pg_sleep."""

    def run() -> None:
        with suppress_instrumentation(), psycopg.connect(dsn, autocommit=True) as admin:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
                if row is not None and row[0] == "active" and "pg_sleep" in row[1]:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    return
                time.sleep(0.01)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def terminated_sync(dsn: str, suppressed: bool) -> tuple[BaseException, BaseException, float]:
    """The error of a terminated pg_sleep, then the error of reusing that connection."""
    conn = psycopg.connect(dsn, autocommit=True)
    killer = terminate_when_sleeping(dsn, conn.info.backend_pid)
    t0 = time.monotonic()
    try:
        if suppressed:
            with suppress_instrumentation():
                first = raised_by(lambda: conn.execute(SLEEP))
                again = raised_by(lambda: conn.execute("SELECT 1"))
        else:
            first = raised_by(lambda: conn.execute(SLEEP))
            again = raised_by(lambda: conn.execute("SELECT 1"))
    finally:
        killer.join()
        conn.close()
    return first, again, time.monotonic() - t0


def test_postgres_backend_terminated_mid_query_raises_the_raw_error_and_recovers(
    make_telemetry: Any, pg_dsn: str, table: str
) -> None:
    telemetry = make_telemetry(instrument=["psycopg"])
    raw, raw_again, _ = terminated_sync(pg_dsn, suppressed=True)
    exc, again, seconds = terminated_sync(pg_dsn, suppressed=False)

    assert type(exc) is type(raw) is psycopg.errors.AdminShutdown
    assert isinstance(exc, psycopg.OperationalError)
    assert exc.sqlstate == raw.sqlstate == "57P01"
    assert type(again) is type(raw_again) is psycopg.OperationalError
    assert seconds < 5  # terminated, not slept through
    (sleep_span,) = assert_error_spans(telemetry, "AdminShutdown", 1)
    assert sleep_span.name == "SELECT"
    assert sleep_span.attributes["db.response.status_code"] == "57P01"
    # reusing the dead connection fails in psycopg before a statement exists: not an access
    assert len(error_spans(telemetry)) == 1

    # the next connection works and is counted
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT body FROM memories WHERE id = %s", (1,)).fetchone() == ("one",)
    assert telemetry.access_count(db__operation__name="SELECT", error__type="AdminShutdown") == 1
    assert telemetry.access_count(db__operation__name="SELECT", tiertrace__hit=True) == 1
    assert telemetry.access_count() == 2
    total = tiertrace.stats()["total"]["tiers"]["postgresql"]
    assert (total["accesses"], total["errors"], total["hits"]) == (2, 1, 1)


async def test_async_postgres_backend_terminated_mid_query_raises_the_raw_error(
    make_telemetry: Any, pg_dsn: str, table: str
) -> None:
    telemetry = make_telemetry(instrument=["psycopg"])
    errors: list[BaseException] = []
    for suppressed in (True, False):
        conn = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
        killer = terminate_when_sleeping(pg_dsn, conn.info.backend_pid)
        try:
            if suppressed:
                with suppress_instrumentation():
                    await conn.execute(SLEEP)
            else:
                await conn.execute(SLEEP)
        except psycopg.Error as exc:
            errors.append(exc)
        finally:
            await asyncio.to_thread(killer.join)
            await conn.close()
    raw, exc = errors
    assert type(exc) is type(raw) is psycopg.errors.AdminShutdown
    (span,) = assert_error_spans(telemetry, "AdminShutdown", 1)
    assert span.attributes["db.response.status_code"] == "57P01"
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT body FROM memories WHERE id = %s", (2,))
        assert await cur.fetchone() == ("two",)
    assert telemetry.access_count(tiertrace__hit=True) == 1
    assert telemetry.access_count() == 2


# -- Chroma ------------------------------------------------------------------------------------


def test_chroma_server_killed_gives_the_http_clients_own_error_and_recovers(
    make_telemetry: Any, own_chroma: ChromaProcess
) -> None:
    telemetry = make_telemetry(instrument=["chroma"])
    client = chromadb.HttpClient(
        host="127.0.0.1", port=own_chroma.port, settings=Settings(anonymized_telemetry=False)
    )
    collection = client.get_or_create_collection(
        f"faults-{uuid.uuid4().hex[:8]}", embedding_function=None
    )
    collection.add(ids=["a"], embeddings=[[1.0, 0.0]])

    def query() -> Any:
        return collection.query(query_embeddings=[[1.0, 0.0]], n_results=1)

    assert query()["ids"] == [["a"]]
    assert collection.get(ids=["missing"])["ids"] == []
    own_chroma.kill()
    with suppress_instrumentation():
        raw = raised_by(query)
    failures = [raised_by(query), raised_by(lambda: collection.get(ids=["a"]))]
    own_chroma.start()  # same port, same data directory
    assert query()["ids"] == [["a"]]

    assert type(raw) is httpx.ConnectError
    assert [type(e) for e in failures] == [type(raw)] * 2
    spans = assert_error_spans(telemetry, "ConnectError", 2)
    assert len(error_spans(telemetry)) == 2
    assert sorted(s.attributes["db.operation.name"] for s in spans) == ["get", "query"]
    assert all(s.attributes["server.port"] == own_chroma.port for s in spans)
    assert telemetry.access_count(db__operation__name="query", tiertrace__hit=True) == 2
    assert telemetry.access_count(db__operation__name="get", tiertrace__hit=False) == 1
    assert telemetry.access_count(db__operation__name="add", tiertrace__hit=ABSENT) == 1
    assert telemetry.access_count(error__type="ConnectError") == 2
    assert telemetry.access_count() == 6


# -- exporters down or slow --------------------------------------------------------------------

# Runs in a fresh interpreter: exporter="otlp" installs global providers, which must not leak
# into other tests. Prints one JSON line.
EXPORTER_CHILD = r"""
import json, sys, threading, time
import redis, tiertrace
from opentelemetry.sdk.trace import SpanProcessor

url, rounds, bound = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

class Ended(SpanProcessor):
    def __init__(self):
        self.n = 0
    def on_end(self, span):
        self.n += 1

h = tiertrace.init(exporter="otlp", instrument=["redis"])
provider = h.telemetry.tracer_provider
ended = Ended()
provider.add_span_processor(ended)
spans = provider._active_span_processor._span_processors[0]._batch_processor
logs = h.telemetry.logger_provider._multi_log_record_processor._log_record_processors[0]
logs = logs._batch_processor
r = redis.Redis.from_url(url)
raised = calls = reads = most_spans = most_logs = 0
t0 = time.monotonic()
for i in range(rounds):
    try:
        r.set(f"exp:{i}", "v")
        r.get(f"exp:{i}")
        r.get(f"exp:absent:{i}")
    except Exception:
        raised += 1
    calls += 3
    reads += 2
    most_spans = max(most_spans, len(spans._queue))
    most_logs = max(most_logs, len(logs._queue))
work_s = time.monotonic() - t0
t1 = time.monotonic()
done = threading.Thread(target=tiertrace.shutdown, daemon=True)
done.start()
done.join(bound)
shutdown_s = time.monotonic() - t1
total = h.stats.snapshot()["total"]
print(json.dumps({
    "raised": raised, "calls": calls, "reads": reads, "ended": ended.n,
    "most_spans": most_spans, "span_queue": spans._max_queue_size,
    "most_logs": most_logs, "log_queue": logs._max_queue_size,
    "accesses": total["tiers"]["redis"]["accesses"], "lookups": total["lookups"],
    "work_s": work_s, "shutdown_s": shutdown_s, "shutdown_done": not done.is_alive(),
}), flush=True)
import os
os._exit(0)
"""


class BlackHole:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def exporter_child(
    redis_url: str, endpoint: str, rounds: int, bound: float, **env: str
) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TIERTRACE_", "OTEL_"))}
    clean.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "OTEL_SERVICE_NAME": "tiertrace-reliability",
            **env,
        }
    )
    args = [sys.executable, "-c", EXPORTER_CHILD, redis_url, str(rounds), str(bound)]
    return subprocess.Popen(
        args, env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def result_of(child: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


SMALL_QUEUES = {
    "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    "OTEL_BSP_MAX_QUEUE_SIZE": "256",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64",
    "OTEL_BLRP_MAX_QUEUE_SIZE": "256",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "64",
}


def test_dead_or_silent_otlp_endpoint_never_reaches_the_application(
    redis_url: str, black_hole: BlackHole
) -> None:
    rounds = 1500
    children = {  # both at once: they do not share anything
        "closed port": exporter_child(
            redis_url, f"http://127.0.0.1:{closed_port()}", rounds, 60.0, **SMALL_QUEUES
        ),
        "black hole": exporter_child(
            redis_url, f"http://127.0.0.1:{black_hole.port}", rounds, 60.0, **SMALL_QUEUES
        ),
    }
    for name, child in children.items():
        got = result_of(child)
        assert got["raised"] == 0, name  # application calls never raise
        assert got["accesses"] == got["calls"] == 3 * rounds, name  # nothing lost in stats
        assert got["lookups"] == got["reads"] == 2 * rounds, name
        # pending spans and log records stay within their queues while many more were made
        assert got["ended"] >= 3 * rounds, name
        assert got["span_queue"] == got["log_queue"] == 256, name
        assert got["most_spans"] <= got["span_queue"], name
        assert got["most_logs"] <= got["log_queue"], name
        assert got["shutdown_done"] and got["shutdown_s"] < 30, (name, got["shutdown_s"])


def test_shutdown_with_a_silent_otlp_endpoint_is_bounded_by_a_few_export_timeouts(
    redis_url: str, black_hole: BlackHole
) -> None:
    # 1 s export timeout, queues of 2048 in batches of 64: 32 batches per signal
    env = {**SMALL_QUEUES, "OTEL_BSP_MAX_QUEUE_SIZE": "2048", "OTEL_BLRP_MAX_QUEUE_SIZE": "2048"}
    bound = 3 * 1.0 + 5  # three signals, one export timeout each, and slack
    got = result_of(
        exporter_child(redis_url, f"http://127.0.0.1:{black_hole.port}", 1500, bound, **env)
    )
    assert got["raised"] == 0 and got["accesses"] == 4500
    assert got["shutdown_done"], f"tiertrace.shutdown() still running after {bound} s"
