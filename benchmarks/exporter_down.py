"""What an unreachable telemetry backend costs the application: Redis GET per call.

Each scenario runs in a fresh interpreter (``exporter="otlp"`` installs global providers) and
times ``calls`` GETs of one key, one by one, after a warm-up:

* ``no tiertrace``       the raw client, for reference;
* ``no-op exporter``     tiertrace with batch processors whose exporters drop everything;
* ``OTLP, accepting``    ``exporter="otlp"`` to an HTTP server that answers 200 to everything;
* ``OTLP, dead``         ``exporter="otlp"`` to a closed port (connection refused);
* ``OTLP, black hole``   ``exporter="otlp"`` to a TCP server that accepts and never answers.

It prints per-call mean, p50 and p99 in microseconds, the most spans ever pending in the span
queue (bounded by ``OTEL_BSP_MAX_QUEUE_SIZE``) and how long ``tiertrace.shutdown()`` took.

Usage::

    .venv/bin/python benchmarks/exporter_down.py [--calls 20000] [--otlp-timeout 2]
                                                  [--redis-url redis://127.0.0.1:6379/0]

Without ``--redis-url`` a private redis-server is started on a free loopback port
(`harness.services`). Only loopback addresses are used. ``--otlp-timeout`` sets
``OTEL_EXPORTER_OTLP_TIMEOUT`` (seconds; the SDK default is 10, which makes the black-hole
shutdown take minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCENARIOS = ("no tiertrace", "no-op exporter", "OTLP, accepting", "OTLP, dead", "OTLP, black hole")


# -- the child: one scenario ------------------------------------------------------------------


def child(scenario: str, redis_url: str, calls: int) -> dict[str, Any]:
    import redis

    handle: Any = None
    if scenario == "no-op exporter":
        handle = _init_noop()
    elif scenario.startswith("OTLP"):
        import tiertrace

        handle = tiertrace.init(exporter="otlp", instrument=["redis"])
    queue = _span_queue(handle)
    client = redis.Redis.from_url(redis_url)
    client.set("bench:exporter", "v")
    for _ in range(1000):  # warm-up
        client.get("bench:exporter")
    times = []
    most = 0
    for i in range(calls):
        t0 = time.perf_counter_ns()
        client.get("bench:exporter")
        times.append(time.perf_counter_ns() - t0)
        if queue is not None and i % 64 == 0:
            most = max(most, len(queue))
    shutdown_s = None
    if handle is not None:
        import tiertrace

        t0 = time.perf_counter_ns()
        tiertrace.shutdown()
        shutdown_s = (time.perf_counter_ns() - t0) / 1e9
    return {
        "times_ns": times,  # summarised by the parent (harness.timing.per_call_summary)
        "most_pending": most if queue is not None else None,
        "shutdown_s": shutdown_s,
    }


def _init_noop() -> Any:
    from collections.abc import Sequence

    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor,
        LogRecordExporter,
        LogRecordExportResult,
    )
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    import tiertrace

    class Spans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class Metrics(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kw: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kw: Any) -> None:
            return None

    class Logs(LogRecordExporter):
        def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
            return LogRecordExportResult.SUCCESS

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

        def shutdown(self) -> None:
            return None

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Spans()))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(Logs()))
    meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(Metrics())])
    return tiertrace.init(
        exporter="none",
        instrument=["redis"],
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
    )


def _span_queue(handle: Any) -> Any:
    try:
        provider = handle.telemetry.tracer_provider
        return provider._active_span_processor._span_processors[0]._batch_processor._queue
    except Exception:
        return None


# -- the parent: endpoints, services, the table ------------------------------------------------


class _Accepting(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _BlackHole:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


def run(scenario: str, endpoint: str, redis_url: str, calls: int, timeout: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIERTRACE_", "OTEL_"))}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_TIMEOUT=timeout)
    args = [sys.executable, __file__, "--child", scenario, "--redis-url", redis_url]
    done = subprocess.run(
        [*args, "--calls", str(calls)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{scenario} failed:\n{done.stderr[-2000:]}")
    from harness.timing import per_call_summary

    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**per_call_summary(got.pop("times_ns")), **got}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--otlp-timeout", default="2")
    parser.add_argument("--redis-url")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        print(json.dumps(child(opts.child, opts.redis_url, opts.calls)))
        return

    # the parent only: a child stays free of the harness (and of tiertrace without it)
    from harness.services import RedisServer, free_port

    server, url = None, opts.redis_url
    if url is None:
        server = RedisServer()
        url = server.url
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Accepting)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    hole = _BlackHole()
    endpoints = {
        "no tiertrace": "http://127.0.0.1:9",
        "no-op exporter": "http://127.0.0.1:9",
        "OTLP, accepting": f"http://127.0.0.1:{http.server_address[1]}",
        "OTLP, dead": f"http://127.0.0.1:{free_port()}",
        "OTLP, black hole": f"http://127.0.0.1:{hole.port}",
    }
    print(f"Redis GET, {opts.calls} calls per scenario")
    print(f"OTEL_EXPORTER_OTLP_TIMEOUT={opts.otlp_timeout}")
    columns = ("mean µs", "p50 µs", "p99 µs", "pending", "shutdown s")
    header = f"{'scenario':<18} " + " ".join(f"{c:>{max(9, len(c))}}" for c in columns)
    print(header)
    print("-" * len(header))
    try:
        for scenario in SCENARIOS:
            got = run(scenario, endpoints[scenario], url, opts.calls, opts.otlp_timeout)
            pending = "-" if got["most_pending"] is None else str(got["most_pending"])
            shutdown = "-" if got["shutdown_s"] is None else f"{got['shutdown_s']:.2f}"
            print(
                f"{scenario:<18} {got['mean_us']:>9.1f} {got['p50_us']:>9.1f} "
                f"{got['p99_us']:>9.1f} {pending:>9} {shutdown:>10}",
                flush=True,
            )
    finally:
        http.shutdown()
        hole.close()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
