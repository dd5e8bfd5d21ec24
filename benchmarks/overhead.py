"""Overhead of tiertrace on the hot path, measured next to the contrib instrumentations.

Usage::

    python benchmarks/overhead.py [--quick] [--json FILE] [--reps N] [--no-throughput]
    python benchmarks/overhead.py --profile full|metrics|anchor|anchor_metrics|span|raw [--op NAME]
                                  [--seconds S] [--gc]
    python benchmarks/overhead.py --profile-report PYSPY_RAW_FILE [--overhead-us US]
    python benchmarks/harness/report.py overhead.json   # the markdown tables of RESULTS.md

One process measures every operation under these configurations (`harness.modes`):

* ``raw`` — nothing instrumented (checked after every switch: every patched client method is the
  library's own function again, and a new psycopg connection has psycopg's own cursor class);
* ``metrics`` — ``tiertrace.init(exporter="none")`` with an SDK ``TracerProvider`` whose sampler
  is ALWAYS_OFF and an SDK ``MeterProvider`` read by an ``InMemoryMetricReader``;
* ``full`` — the same with an ALWAYS_ON sampler, a ``BatchSpanProcessor`` into a no-op exporter
  and an SDK ``LoggerProvider`` with a ``BatchLogRecordProcessor`` into a no-op exporter (what
  ``exporter="otlp"`` wires): spans, metrics, cost, lookups and their ``memory_tier_access``
  events, stats and the advisor all on (the defaults);
* ``anchor`` — opentelemetry-instrumentation-redis and -psycopg and openllmetry's
  opentelemetry-instrumentation-chromadb with the tracer and meter provider of ``full`` (they
  record spans only);
* ``anchor_metrics`` — the PostgreSQL operations only: opentelemetry-instrumentation-psycopg with
  ``OTEL_SEMCONV_STABILITY_OPT_IN=database``, which adds the ``db.client.operation.duration``
  histogram (JSON: ``anchor_metrics_overhead_us``; None for the other operations);
* ``span`` — the operations of the goals only: nothing instrumented, each call wrapped in a bare
  recorded span (start, end, the ``BatchSpanProcessor`` of ``full``, no attribute): the SDK's
  floor where the call runs, after the client's own work has left the processor's caches cold,
  which the warm-loop floor below is not (JSON: ``span_overhead_us``; table "A bare recorded
  span around the call"). ``full`` minus it is what tiertrace adds to the one span an access
  must have;
* ``unsampled`` — the operations of the goals only: ``full`` with the SDK's default sampler
  (parent-based, always on) and each call under a remote parent that is not sampled, as for a
  request whose ``traceparent`` says so: metrics-only the way most traffic meets it when
  tracing is on and sampled (JSON: ``unsampled_overhead_us``; table "Tracing on, the request
  not sampled"; a goal row next to metrics-only).

Services are private (`harness.services`): a redis-server on a free port, a PostgreSQL database
created on 127.0.0.1:5432 (user postgres, ``TIERTRACE_BENCH_PG`` to point elsewhere; a private
cluster when that server does not answer) and dropped at the end, an embedded Chroma
``PersistentClient`` in a temporary directory holding 5,000 random 384-dimensional vectors with
explicit embeddings.

Method (`harness.timing`): the process, the redis-server and the PostgreSQL backends of the
benchmark's connections share one CPU (a loopback round trip between two vCPUs of a KVM guest
costs 40-150 µs more and is far noisier). Each operation's batch size is calibrated once so that
a raw batch lasts about ``--target-ms``; every repetition activates the configurations in a
rotated order (interleaving cancels drift) and runs, per operation, an untimed warm-up (a tenth
of the batch) and one timed batch with the garbage collector off (setup objects frozen out of its
way). Reported: median µs per call over the repetitions; overheads (+µs) are medians of the
per-repetition differences to raw (paired). A second table gives the same from the CPU time of
the calling thread, which other load on a shared machine disturbs much less than wall time. The
lookup rows run ``tiertrace.TieredMemory`` (``promote=False``, so every call is served by the same
tier) under tiertrace and the same read-through written by hand with the raw clients under
``raw`` and the anchors; the cache-aside rows run the hand-written read-through everywhere (under
tiertrace it is grouped by implicit lookups).

SDK floor (`harness.floor`, JSON ``floor``): in the same run, what one OpenTelemetry call costs in
a warm loop — a bare recorded span, an SDK ``Histogram.record`` with 5 attributes, one
pre-resolved aggregation slot increment (``span_us``, ``histogram_us``, ``slot_us``; CPU µs).

Throughput (`harness.throughput`): 8 threads sharing one ``redis.Redis`` and 200 asyncio tasks
sharing one ``redis.asyncio.Redis`` on a ``BlockingConnectionPool`` run GET hits for a fixed time
under raw, metrics and full (rotated), with the garbage collector on as in a service; reported:
ops/s and the share of the raw throughput that full (``kept_pct``) and metrics
(``metrics_kept_pct``) keep. On one CPU this is the ratio of CPU cost per GET.

Profiling (`harness.profiling`): ``--profile MODE [--op NAME]`` only runs one operation (default
``redis_get_hit``) in that configuration for ``--seconds`` (default 20), collector off as in the
timed batches, and prints wall and CPU µs per call; run it under py-spy and summarise with
``--profile-report`` (``--overhead-us``: that operation's CPU overhead in that mode, from the CPU
table)::

    py-spy record --threads --full-filenames -r 1000 --format raw -o /tmp/full.txt -- \\
        .venv/bin/python benchmarks/overhead.py --profile full --op redis_get_hit
    .venv/bin/python benchmarks/overhead.py --profile-report /tmp/full.txt --overhead-us 85
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from harness.modes import CONFIGS
from harness.profiling import profile_loop, profile_report
from harness.report import print_report, write_json
from harness.runner import Plan, run_overhead
from harness.services import Services
from harness.workload import OPS, seed_redis


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="5 short repetitions (< 2 minutes)")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--reps", type=int, help="repetitions (default 10, quick 5)")
    ap.add_argument("--target-ms", type=float, help="raw duration of one timed batch")
    ap.add_argument("--no-throughput", action="store_true", help="skip the throughput runs")
    ap.add_argument("--only", help="comma-separated operation names (default: all)")
    ap.add_argument("--profile", choices=CONFIGS, help="only loop one operation (for py-spy)")
    ap.add_argument("--op", default="redis_get_hit", help="operation of --profile")
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of --profile")
    ap.add_argument("--gc", action="store_true", help="--profile with the collector on")
    ap.add_argument("--profile-report", metavar="FILE", help="summarise a py-spy raw file")
    ap.add_argument("--overhead-us", type=float, help="CPU overhead per call to distribute")
    args = ap.parse_args(argv)
    if args.profile_report:
        profile_report(args.profile_report, args.overhead_us)
        return 0
    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)

    if args.profile:
        services = Services(log, seed=seed_redis)
        try:
            profile_loop(services.env, args.profile, args.op, args.seconds, args.gc)
        finally:
            services.stop()
        return 0

    plan = Plan(
        reps=args.reps or (5 if args.quick else 10),
        target_s=(args.target_ms or (30.0 if args.quick else 150.0)) / 1000,
        throughput_s=2.0 if args.quick else 5.0,
        throughput_rounds=1 if args.quick else 2,
    )
    if args.only:
        wanted = set(args.only.split(","))
        plan.ops = tuple(op for op in OPS if op.name in wanted)
    report = run_overhead(plan, args.quick, not args.no_throughput, log, started)
    print_report(report)
    if args.json:
        write_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
