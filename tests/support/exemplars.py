"""A cache-aside workload whose spans are written down, for the live exemplar test.

Run as ``python -m support.exemplars CONFIG.json`` (the test does): ``tiertrace.init(exporter=
"prometheus")`` on the configured port with an SDK tracer provider whose every finished span is
appended, as one JSON line ``{"trace_id", "span_id", "name", "tier"}`` (ids in lowercase hex), to
``spans_path``. Then, until SIGTERM, about ``rate`` lookups per second, each an explicit
`tiertrace.lookup` of a Zipf-skewed key: Redis ``GET``; on a miss the PostgreSQL ``SELECT`` and a
Redis ``SET`` with a 1 s TTL (cache-aside), so hot keys hit Redis and cold ones fall through.
At SIGTERM it shuts tiertrace and the tracer provider down and exits.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

KEYS = 60
ZIPF_S = 1.1


def key(i: int) -> str:
    return f"tiertrace-exemplars:user:{i}:profile"


class JsonLinesSpans(SpanExporter):
    """Appends each span as one JSON line (flushed at once: the test reads the file)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.lock:
            for s in spans:
                attrs = s.attributes or {}
                row = {
                    "trace_id": f"{s.context.trace_id:032x}",
                    "span_id": f"{s.context.span_id:016x}",
                    "name": s.name,
                    "tier": attrs.get("tiertrace.tier"),
                }
                self.out.write(json.dumps(row) + "\n")
            self.out.flush()
        return SpanExportResult.SUCCESS


def run(config_path: str) -> None:
    import psycopg
    import redis
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    import tiertrace

    cfg: dict[str, Any] = json.loads(Path(config_path).read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Path(cfg["spans_path"]).open("a", encoding="utf-8") as out:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpans(out)))
        tiertrace.init(
            exporter="prometheus",
            prometheus_port=cfg["port"],
            instrument=["redis", "psycopg"],
            tracer_provider=provider,
        )
        r = redis.Redis.from_url(cfg["redis_url"])
        pg = psycopg.connect(cfg["pg_dsn"], autocommit=True)
        sql = f"SELECT body FROM {cfg['table']} WHERE id = %s"
        rng = random.Random(20240607)
        weights = [1 / (i + 1) ** ZIPF_S for i in range(KEYS)]
        interval, next_at = 1.0 / cfg["rate"], time.monotonic()
        while not stop.is_set():
            i = rng.choices(range(KEYS), weights)[0]
            with tiertrace.lookup(query_type="profile"):
                if r.get(key(i)) is None:
                    row = pg.execute(sql, (i,)).fetchone()
                    r.set(key(i), row[0] if row else "", ex=1)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:  # fell behind (a loaded machine): do not burst to catch up
                next_at = time.monotonic()
        tiertrace.shutdown()
        provider.shutdown()
        r.close()
        pg.close()


if __name__ == "__main__":
    run(sys.argv[1])
