"""The memory corpus and the stores of ``tiertrace demo``: generated, seeded, cleaned up again.

`corpus` makes the facts (distinct questions built from word lists, so no two of them share a
normalized text) and `popularity` their Zipf-distributed order.

`Stores` checks Redis, PostgreSQL and (when given) a Chroma server, starts private ones with
``--start-services`` (see `tiertrace._cli.services`), seeds the memory corpus and builds the
`tiertrace.TieredMemory` the agents use. Everything the demo writes is its own and is removed
when it ends: Redis keys under ``tiertrace-demo:``, the PostgreSQL table
``tiertrace_demo_memories``, the Chroma collection of the same name (or the whole temporary
directory of the embedded Chroma). Seeding and cleaning up run with instrumentation
suppressed, so they are not part of what the demo measures.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from tiertrace._cli.services import (
    PrivateServices,
    Unavailable,
    check_chroma,
    check_otlp,
    check_postgres,
    check_redis,
)

KEY_PREFIX = "tiertrace-demo:"
TABLE = "tiertrace_demo_memories"
COLLECTION = "tiertrace_demo_memories"
TOPICS = ("travel", "billing", "orders", "calendar", "projects", "health", "family", "music")
QUERY_TYPES = ("fact", "preference", "episode", "profile", "plan")
ADJECTIVES = tuple(
    "amber azure brisk calm coral crimson dusky early fallow gentle golden hazel idle jade "
    "lunar misty noble olive quiet rapid rustic silver sunny velvet wild".split()
)
NOUNS = tuple(
    "anchor badger beacon canyon cedar comet delta ember falcon fjord garden harbor island "
    "lantern meadow orchard pebble quarry raven river summit thicket valley willow zephyr".split()
)
MAX_FACTS = len(TOPICS) * len(ADJECTIVES) * len(NOUNS)  # 5,000 distinct questions


SELECT = "SELECT body FROM {table} WHERE query = %s"
INSERT = "INSERT INTO {table} (query, body) VALUES (%s, %s) ON CONFLICT (query) DO NOTHING"


@dataclass(frozen=True)
class Fact:
    """One memory of the demo corpus."""

    question: str
    answer: str
    query_type: str
    in_postgres: bool


def corpus(count: int, rng: random.Random) -> list[Fact]:
    """``count`` facts (at most `MAX_FACTS`); about 30 % of them live only in Chroma."""
    facts = []
    for i in range(min(count, MAX_FACTS)):
        rest, topic = divmod(i, len(TOPICS))
        noun, adjective = divmod(rest, len(ADJECTIVES))
        thing = f"{ADJECTIVES[adjective]} {NOUNS[noun]}"
        facts.append(
            Fact(
                question=f"What do I remember about the {thing} in {TOPICS[topic]}?",
                answer=f"The {thing} ({TOPICS[topic]}): note {rng.randrange(10**6):06d}.",
                query_type=QUERY_TYPES[rest % len(QUERY_TYPES)],
                in_postgres=rng.random() < 0.7,
            )
        )
    return facts


def popularity(facts: list[Fact], s: float, rng: random.Random) -> tuple[list[Fact], list[float]]:
    """The facts in a random popularity order and the cumulative Zipf(s) weights of the ranks."""
    ranked = facts[:]
    rng.shuffle(ranked)
    weights = [1.0 / (rank**s) for rank in range(1, len(ranked) + 1)]
    return ranked, list(itertools.accumulate(weights))


def _quiet() -> Any:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


class Stores:
    """The demo's Redis, PostgreSQL and Chroma; a context manager that cleans up after itself."""

    def __init__(
        self,
        redis_url: str,
        postgres_dsn: str,
        chroma_url: str | None,
        start_services: bool,
        otlp_url: str | None = None,
        namespace: str = "",
    ) -> None:
        self.redis_url, self.postgres_dsn, self.chroma_url = redis_url, postgres_dsn, chroma_url
        # one worker process of `demo --workers N` each: its own keys, table and collection
        self.key_prefix = f"{KEY_PREFIX}{namespace}:" if namespace else KEY_PREFIX
        self.table = f"{TABLE}_{namespace}" if namespace else TABLE
        self.collection_name = f"{COLLECTION}_{namespace}" if namespace else COLLECTION
        self.otlp_url = otlp_url
        self.private = PrivateServices() if start_services else None
        self.redis: Any = None
        self.pool: Any = None
        self.chroma: Any = None
        self.collection: Any = None
        self.chroma_dir: str | None = None
        self.table_created = False
        self.pinned: dict[str, int] = {}
        self.started: list[str] = []  # private services started, for the user

    def __enter__(self) -> Stores:
        try:
            self._check()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self) -> None:
        if self.otlp_url:
            check_otlp(self.otlp_url)
        if self.chroma_url:
            check_chroma(self.chroma_url)
        for check, start, attr in (
            (check_redis, "start_redis", "redis_url"),
            (check_postgres, "start_postgres", "postgres_dsn"),
        ):
            try:
                check(getattr(self, attr))
            except Unavailable:
                if self.private is None:
                    raise
                setattr(self, attr, getattr(self.private, start)())
                self.started.append(getattr(self, attr))

    def seed(self, facts: list[Fact], ttl_s: int, agents: int) -> Any:
        """Fill PostgreSQL and Chroma, empty the demo's Redis keys; the `TieredMemory`."""
        import psycopg_pool
        import redis

        from tiertrace._instrument.chroma.embedding import HashingEmbeddingFunction
        from tiertrace._memory import TieredMemory

        embed = HashingEmbeddingFunction(dim=384)
        with _quiet():
            self.redis = redis.Redis.from_url(
                self.redis_url, socket_connect_timeout=5, socket_timeout=10
            )
            self._delete_keys()
            self.pool = psycopg_pool.ConnectionPool(
                self.postgres_dsn,
                min_size=1,
                max_size=max(1, agents),
                kwargs={"autocommit": True},
                timeout=10,
                open=True,
            )
            with self.pool.connection() as conn:
                conn.execute(f"DROP TABLE IF EXISTS {self.table}")
                conn.execute(
                    f"CREATE TABLE {self.table} (query text PRIMARY KEY, body text NOT NULL)"
                )
                self.table_created = True
                with conn.cursor() as cur:
                    cur.executemany(
                        INSERT.format(table=self.table),
                        [(f.question, f.answer) for f in facts if f.in_postgres],
                    )
            self.collection = self._open_chroma(embed)
            memory = TieredMemory(
                redis=self.redis,
                postgres=self.pool,
                sql=SELECT.format(table=self.table),
                put_sql=INSERT.format(table=self.table),
                chroma=self.collection,
                embedding_function=embed,
                n_results=3,
                ttl_s={"redis": ttl_s},
                key_prefix=self.key_prefix,
            )
            for start in range(0, len(facts), 500):
                batch = facts[start : start + 500]
                questions = [f.question for f in batch]
                self.collection.add(
                    ids=[memory.key(q) for q in questions],
                    documents=[f.answer for f in batch],
                    embeddings=embed(questions),
                )
        return memory

    def precache(self, suggestions: list[Any]) -> int:
        """Act on the advisor: keep each suggested key in Redis with its suggested TTL.

        Every call refreshes (``EXPIRE``, one pipeline) every key suggested so far; a key that
        has expired meanwhile comes back at its next promotion. Returns how many are kept.
        """
        for s in suggestions:
            key = str(getattr(s, "key", None) or "")
            wanted = getattr(s, "kind", None) == "pre-cache" and key.startswith(self.key_prefix)
            if wanted and (key in self.pinned or len(self.pinned) < 500):
                self.pinned[key] = max(1, round(getattr(s, "ttl_s", None) or 1))
        if self.pinned and self.redis is not None:
            pipe = self.redis.pipeline(transaction=False)
            for key, ttl in self.pinned.items():
                pipe.expire(key, ttl)
            pipe.execute()
        return len(self.pinned)

    def _open_chroma(self, embed: Any) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self.chroma_url:
            from tiertrace._cli.services import chroma_address

            host, port, ssl = chroma_address(self.chroma_url)
            self.chroma = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
        else:
            self.chroma_dir = tempfile.mkdtemp(prefix="tiertrace-demo-chroma-")
            self.chroma = chromadb.PersistentClient(path=self.chroma_dir, settings=settings)
        with contextlib.suppress(Exception):
            self.chroma.delete_collection(self.collection_name)
        return self.chroma.create_collection(self.collection_name, embedding_function=embed)

    def _delete_keys(self) -> None:
        batch: list[Any] = []
        for key in self.redis.scan_iter(match=f"{self.key_prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                self.redis.delete(*batch)
                batch.clear()
        if batch:
            self.redis.delete(*batch)

    def close(self) -> None:
        """Remove everything the demo wrote, close the clients, stop private services."""
        with _quiet():
            if self.redis is not None:
                with contextlib.suppress(Exception):
                    self._delete_keys()
                self.redis.close()
                self.redis = None
            if self.pool is not None:
                if self.table_created:
                    with contextlib.suppress(Exception), self.pool.connection() as conn:
                        conn.execute(f"DROP TABLE IF EXISTS {self.table}")
                self.pool.close()
                self.pool = None
            if self.chroma is not None and self.chroma_url:
                with contextlib.suppress(Exception):
                    self.chroma.delete_collection(self.collection_name)
            self.chroma = self.collection = None
        if self.chroma_dir is not None:
            shutil.rmtree(self.chroma_dir, ignore_errors=True)
            self.chroma_dir = None
        if self.private is not None:
            self.private.stop()
            self.private = None
