"""A lookup span's parent under contrib instrumentation: the application span of its request.

A cache-aside service handles each request inside an application span ``request N``: a Redis
GET that misses, a PostgreSQL SELECT, a Redis SET to fill the cache. With
opentelemetry-instrumentation-redis and -psycopg active as well, every call has a contrib span
(tiertrace enriches it), and that span is current while the next request's GET runs — which
is when the pending implicit lookup of request N is closed. The ``tiertrace.lookup`` span of
request N must still have ``request N`` as its parent (DESIGN §3: the span current at the
lookup's first access, captured then), never the contrib span of the next call.

Covered: both instrumentation orders (contrib first, tiertrace first), requests in threads
and in asyncio tasks, implicit and explicit (``tiertrace.lookup(...)``) lookups.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor as ContribPsycopg
from opentelemetry.instrumentation.redis import RedisInstrumentor as ContribRedis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tiertrace

REQUESTS = 4  # per worker
WORKERS = 3  # threads or tasks
SELECT = "SELECT body FROM memories WHERE id = %s"


class Setup:
    """A tracer provider shared by tiertrace and the contrib instrumentations."""

    def __init__(self, contrib_first: bool, explicit: bool) -> None:
        self.spans = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer = self.provider.get_tracer("app")
        self.explicit = explicit
        self.contrib = [ContribRedis(), ContribPsycopg()]
        if contrib_first:
            self._contrib()
            self._tiertrace()
        else:
            self._tiertrace()
            self._contrib()

    def _contrib(self) -> None:
        for inst in self.contrib:
            inst.instrument(tracer_provider=self.provider)

    def _tiertrace(self) -> None:
        tiertrace.init(
            exporter="none",
            tracer_provider=self.provider,
            meter_provider=MeterProvider(),
            instrument=["redis", "psycopg"],
        )

    def close(self) -> None:
        tiertrace.shutdown()
        for inst in self.contrib:
            if inst.is_instrumented_by_opentelemetry:
                inst.uninstrument()

    def lookup(self) -> Any:
        """The lookup around one request's accesses: explicit, or none (implicit grouping)."""
        return tiertrace.lookup(query_type="faq") if self.explicit else contextlib.nullcontext()


@pytest.fixture(params=["contrib first", "tiertrace first"])
def contrib_first(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "contrib first")


@pytest.fixture(params=["implicit", "explicit"])
def explicit(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "explicit")


@pytest.fixture
def setup(contrib_first: bool, explicit: bool, r: redis.Redis, table: str) -> Iterator[Setup]:
    s = Setup(contrib_first, explicit)
    yield s
    s.close()


def _request_name(worker: int, n: int) -> str:
    return f"request {worker}.{n}"


def test_lookup_spans_of_requests_in_threads_have_their_request_as_parent(
    setup: Setup, redis_url: str, pg_dsn: str
) -> None:
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            client = redis.Redis.from_url(redis_url)
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                for n in range(REQUESTS):
                    key = f"faq:{w}:{n}"  # a new key: every request misses and fills
                    name = _request_name(w, n)
                    with setup.tracer.start_as_current_span(name), setup.lookup():
                        if client.get(key) is None:
                            row = conn.execute(SELECT, (1,)).fetchone()
                            client.set(key, row[0] if row else "")
            client.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    tiertrace.flush()  # closes the last pending lookup of each thread
    _assert_parents(setup)


def test_lookup_spans_of_requests_in_asyncio_tasks_have_their_request_as_parent(
    setup: Setup, redis_url: str, pg_dsn: str
) -> None:
    async def worker(w: int) -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            for n in range(REQUESTS):
                key = f"faq:{w}:{n}"
                with setup.tracer.start_as_current_span(_request_name(w, n)), setup.lookup():
                    if await client.get(key) is None:
                        cursor = await conn.execute(SELECT, (1,))
                        row = await cursor.fetchone()
                        await client.set(key, row[0] if row else "")
                await asyncio.sleep(0)  # let the other tasks interleave
        await client.aclose()

    async def main() -> None:
        await asyncio.gather(*(worker(w) for w in range(WORKERS)))

    asyncio.run(main())
    tiertrace.flush()
    _assert_parents(setup)


def _assert_parents(setup: Setup) -> None:
    spans = setup.spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    requests = {s.name: s for s in spans if s.name.startswith("request ")}
    assert len(requests) == WORKERS * REQUESTS
    accesses = [s for s in spans if s.attributes and "tiertrace.tier" in s.attributes]
    # one span per access (contrib's, enriched), each a child of its request or lookup
    assert len(accesses) == 3 * WORKERS * REQUESTS
    lookup_name = "lookup faq" if setup.explicit else "tiertrace.lookup"
    lookups = [s for s in spans if s.name == lookup_name]
    assert len(lookups) == WORKERS * REQUESTS

    parents = sorted(_parent_name(by_id, s) for s in lookups)
    assert parents == sorted(requests)  # each request's lookup, under that request
    for lk in lookups:
        parent = _parent(by_id, lk)
        assert parent is not None
        assert "tiertrace.tier" not in (parent.attributes or {})  # never an access span
        members = _members(lk, accesses, by_id)
        assert len(members) == 3
        # the accesses it groups are the ones made inside that same request
        assert {_request_of(by_id, a).name for a in members} == {parent.name}


def _parent(by_id: dict[int, ReadableSpan], span: ReadableSpan) -> ReadableSpan | None:
    return by_id.get(span.parent.span_id) if span.parent is not None else None


def _parent_name(by_id: dict[int, ReadableSpan], span: ReadableSpan) -> str:
    parent = _parent(by_id, span)
    return parent.name if parent is not None else "<root>"


def _request_of(by_id: dict[int, ReadableSpan], span: ReadableSpan) -> ReadableSpan:
    current: ReadableSpan | None = span
    while current is not None and not current.name.startswith("request "):
        current = _parent(by_id, current)
    assert current is not None, span.name
    return current


def _members(
    lookup: ReadableSpan, accesses: list[ReadableSpan], by_id: dict[int, ReadableSpan]
) -> list[ReadableSpan]:
    """An implicit lookup's accesses are its links; an explicit one's are its children."""
    if lookup.links:
        linked = {link.context.span_id for link in lookup.links}
        return [a for a in accesses if a.context.span_id in linked]
    own = lookup.context.span_id
    return [a for a in accesses if a.parent is not None and a.parent.span_id == own]
