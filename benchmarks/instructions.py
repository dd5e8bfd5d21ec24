"""Instructions per call under each configuration, counted by valgrind's callgrind.

CPU time on a shared machine moves with cache and frequency effects; instruction counts do
not. For each configuration a child process runs ``tiertrace.init`` (or the contrib anchor),
200 warm-up calls and then N calls (a Redis GET hit on a private redis-server, with ``--op
pg_select`` a psycopg SELECT by primary key on a database of its own, with ``--op
chroma_query`` a query k=5 of the overhead run's embedded Chroma collection, 5,000 vectors of
384 dimensions, built before counting); two runs under
``valgrind --tool=callgrind``, with N = 100 and N = 1,100, give the instructions of 1,000 calls
by difference (start-up and set-up cancel out), with ``PYTHONHASHSEED=0`` so that both runs
hash alike. ``--ablate`` repeats metrics-only with one part of tiertrace switched off at a
time, to show where its instructions go (``grouping``: everything after the access's own slot).
``--floor`` also counts the SDK floor (`harness.floor`) the same way: a bare recorded span,
``Histogram.record`` with 5 attributes, one aggregation slot, and ``span_access``: a span with
exactly the attributes tiertrace gives this access (taken from a real one; at start, then
``tiertrace.hit`` and ``db.response.returned_rows`` set at the end), so ``full`` minus
``span_access`` is what tiertrace adds above the span it must make.

    python benchmarks/instructions.py [--op get|pg_select|chroma_query] [--ablate] [--floor]
                                      [--json FILE]     # ~4 min, ~8 min with --ablate
    python benchmarks/instructions.py --configs raw,metrics     # only these configurations

Needs valgrind (Debian: ``apt-get install -y valgrind``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from harness.ablation import PARTS, switch_off
from harness.services import Chroma, PgDatabase, RedisServer
from harness.workload import SELECT_PK

CONFIGS = ("raw", "anchor", "metrics", "full")
FLOOR = ("span", "span_access", "histogram", "slot")
OPS = ("get", "pg_select", "chroma_query")
CHROMA = "chroma:"  # the child's target for Chroma: this prefix and the collection's directory


def client_of(target: str) -> str:
    """The instrumented client a child's ``target`` is for."""
    if target.startswith("redis:"):
        return "redis"
    return "chroma" if target.startswith(CHROMA) else "psycopg"


def chroma_query(target: str) -> Callable[[], Any]:
    """One query k=5 of the collection `harness.services.Chroma` built in ``target``'s directory."""
    import chromadb
    from chromadb.config import Settings

    path = target.removeprefix(CHROMA)
    client = chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))
    col = client.get_collection("bench_memories", embedding_function=None)
    qvec = col.get(ids=["id-7"], include=["embeddings"])["embeddings"][0].tolist()
    return lambda: col.query(query_embeddings=[qvec], n_results=5)


def child(config: str, calls: int, target: str, ablate: str) -> None:
    """The workload valgrind counts (run as ``instructions.py --child …``); ``target`` is a
    Redis URL, a PostgreSQL DSN or ``chroma:`` and a Chroma directory."""
    if config.startswith("floor:"):
        call = floor_call(config.removeprefix("floor:"), target)
        for _ in range(200 + calls):
            call()
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    import tiertrace

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tp = TracerProvider(sampler=ALWAYS_OFF if config == "metrics" else ALWAYS_ON)
    tp.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=100_000))
    mp = MeterProvider(metric_readers=[tiertrace.bridge_reader(InMemoryMetricReader())])
    client = client_of(target)
    if config in ("metrics", "full"):
        if ablate:
            switch_off(ablate)
        tiertrace.init(exporter="none", tracer_provider=tp, meter_provider=mp,
                       instrument=[client])  # fmt: skip
    elif config == "anchor" and client == "redis":
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    elif config == "anchor" and client == "chroma":
        from opentelemetry.instrumentation.chromadb import ChromaInstrumentor

        ChromaInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    elif config == "anchor":
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        PsycopgInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    if client == "chroma":
        query = chroma_query(target)
        for _ in range(200 + calls):
            query()
        return
    if client == "redis":
        import redis

        r = redis.Redis.from_url(target)
        r.set("bench:hit", "v")
        for _ in range(200 + calls):
            r.get("bench:hit")
        return
    import psycopg

    with psycopg.connect(target, autocommit=True) as conn:
        cur = conn.cursor()
        for _ in range(200 + calls):
            cur.execute(SELECT_PK, (42,))
            cur.fetchone()


def floor_call(row: str, target: str) -> Callable[[], Any]:
    """One SDK floor call: a row of `harness.floor.Floor`, or ``span_access``."""
    from harness.floor import Floor

    floor = Floor()
    if row != "span_access":
        return floor.calls[row]
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    import tiertrace
    from tiertrace._contract.names import HIT

    at_end = (HIT, "db.response.returned_rows")  # what tiertrace sets once the reply is there
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    client = client_of(target)
    tiertrace.init(exporter="none", tracer_provider=provider, instrument=[client])
    if client == "chroma":
        chroma_query(target)()
    elif client == "redis":
        import redis

        r = redis.Redis.from_url(target)
        r.set("bench:hit", "v")
        r.get("bench:hit")
    else:
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(SELECT_PK, (42,)).fetchone()
    tiertrace.shutdown()
    span = spans.get_finished_spans()[-1]
    attrs = dict(span.attributes or {})
    end = [(name, attrs.pop(name)) for name in at_end if name in attrs]
    start_span, name = floor.tracer_provider.get_tracer("bench").start_span, span.name

    kind = SpanKind.INTERNAL if client == "chroma" else SpanKind.CLIENT

    def span_access() -> None:
        s = start_span(name, kind=kind, attributes=attrs)
        for key, value in end:
            s.set_attribute(key, value)
        s.end()

    return span_access


def count(config: str, calls: int, target: str, ablate: str = "") -> int:
    argv = [sys.executable, __file__, "--child", config, str(calls), target, ablate]
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # same hashing every run: less noise
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_call(config: str, target: str, ablate: str = "") -> float:
    return (count(config, 1100, target, ablate) - count(config, 100, target, ablate)) / 1000


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        child(args[1], int(args[2]), args[3], args[4] if len(args) > 4 else "")
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--op", choices=OPS, default="get", help="the call counted (default: get)")
    ap.add_argument("--ablate", action="store_true", help="also metrics-only without each part")
    ap.add_argument("--floor", action="store_true", help="also the SDK floor calls")
    ap.add_argument("--json", metavar="FILE", help="write the counts as JSON")
    ap.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated configurations to count (default: {','.join(CONFIGS)}; raw is "
        "always counted)",
    )
    opts = ap.parse_args(args)
    wanted = {*opts.configs.split(","), *(["metrics"] if opts.ablate else [])}
    configs = ["raw", *(c for c in CONFIGS[1:] if c in wanted)]
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install -y valgrind)")
    os.environ.setdefault("OTEL_SDK_DISABLED", "false")
    server: RedisServer | PgDatabase | Chroma
    if opts.op == "get":
        server = RedisServer()
        target = server.url
    elif opts.op == "pg_select":
        server = PgDatabase()
        target = server.dsn
    else:
        server = Chroma()
        target = CHROMA + server.dir
    try:
        result: dict[str, Any] = {c: per_call(c, target) for c in configs}
        if opts.ablate:
            result["without"] = {p: per_call("metrics", target, p) for p in PARTS}
        if opts.floor:
            result["floor"] = {row: per_call(f"floor:{row}", target) for row in FLOOR}
    finally:
        if isinstance(server, PgDatabase):
            server.drop()
        else:
            server.stop()
    raw = result["raw"]
    anchor = result["anchor"] - raw if "anchor" in result else None
    print(f"{'configuration':<16}{'instructions':>14}{'over raw':>12}{'/ anchor':>10}")
    for c in configs:
        over = result[c] - raw
        ratio = f"{over / anchor:.2f}" if c != "raw" and anchor else ""
        print(f"{c:<16}{result[c] / 1000:>12.1f} k{over / 1000:>+10.1f} k{ratio:>10}")
    for part, value in result.get("without", {}).items():
        print(f"metrics-only without {part}: {(result['metrics'] - value) / 1000:+.1f} k fewer")
    for row, value in result.get("floor", {}).items():
        print(f"SDK floor {row:<12}{value / 1000:>10.1f} k")
    if "floor" in result and "full" in result:
        above = result["full"] - raw - result["floor"]["span_access"]
        print(f"full above its own span (span_access): {above / 1000:+.1f} k")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
