"""``tiertrace demo --prometheus-port P --otlp URL`` serves exemplars of spans it exports.

The demo records spans with a tracer provider of its own even though ``exporter="prometheus"``
exports none; with ``--otlp`` those spans go over OTLP/HTTP (here to a receiver in the test),
and the OpenMetrics ``/metrics`` names their trace and span ids on the latency buckets.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from support.services import free_port

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on a free loopback port: (trace id, span id) in hex."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: set[tuple[str, str]] = set()
        self.paths: set[str] = set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.paths.add(self.path)
            if self.path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                for rs in request.resource_spans:
                    for ss in rs.scope_spans:
                        for s in ss.spans:
                            self.server.spans.add((s.trace_id.hex(), s.span_id.hex()))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _exemplars(url: str) -> set[tuple[str, str]]:
    request = urllib.request.Request(url, headers={"Accept": OPENMETRICS})
    with urllib.request.urlopen(request, timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.exemplar.labels["trace_id"], s.exemplar.labels["span_id"])
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.exemplar is not None and s.name == "tiertrace_access_duration_seconds_bucket"
    }


def test_demo_serves_exemplars_of_the_spans_it_exports(
    receiver: Receiver, redis_url: str, pg_dsn: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OTEL_SDK_DISABLED": "false"}
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER", "TIERTRACE_EXPORTER"):
        env.pop(name, None)
    argv = [
        *(sys.executable, "-m", "tiertrace._cli.main", "demo", "--no-live"),
        *("--duration", "8", "--lookups", "0", "--rate", "100"),
        *("--prometheus-port", str(port), "--otlp", receiver.url),
        *("--redis-url", redis_url.rsplit("/", 1)[0] + "/6", "--postgres-dsn", pg_dsn),
    ]
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    served: set[tuple[str, str]] = set()
    try:
        deadline = time.monotonic() + 90
        while demo.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # not serving yet (or any more)
                served |= _exemplars(f"http://127.0.0.1:{port}/metrics")
            time.sleep(0.5)
        demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=10)
    assert demo.returncode == 0, log.read_text(errors="replace")[-3000:]
    assert len(served) >= 3  # a Redis hit, a Redis miss, a PostgreSQL read … over the run
    assert served <= receiver.spans  # every exemplar is a span the demo exported
    assert receiver.paths == {"/v1/traces"}  # metrics are scraped, not pushed
