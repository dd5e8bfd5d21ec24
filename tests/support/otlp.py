"""A live OTLP/HTTP receiver on a free loopback port, decoding what it is sent.

`OtlpReceiver` answers ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs`` with 200 (after
``delay_s``, to play a slow collector) and keeps each request decoded as its protobuf message,
per signal, in arrival order::

    with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        ...
    receiver.requests["metrics"]  # [ExportMetricsServiceRequest, ...]
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

MESSAGES: dict[str, Any] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


class OtlpReceiver:
    """``url`` is the base endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``); ``requests[signal]``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.requests: dict[str, list[Any]] = {signal: [] for signal in MESSAGES}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signal = self.path.rstrip("/").rsplit("/", 1)[-1]
                if signal not in MESSAGES:
                    self.send_response(404)
                    self.end_headers()
                    return
                message = MESSAGES[signal]()
                message.ParseFromString(body)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                with receiver.lock:
                    receiver.requests[signal].append(message)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def metric_names(self) -> list[set[str]]:
        """The metric names of each metrics request received, in arrival order."""
        with self.lock:
            requests = list(self.requests["metrics"])
        return [
            {m.name for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
            for r in requests
        ]

    def span_names(self) -> list[str]:
        with self.lock:
            requests = list(self.requests["traces"])
        return [
            s.name for r in requests for rs in r.resource_spans for ss in rs.scope_spans
            for s in ss.spans
        ]  # fmt: skip

    def log_records(self) -> list[Any]:
        with self.lock:
            requests = list(self.requests["logs"])
        return [
            rec for r in requests for rl in r.resource_logs for sl in rl.scope_logs
            for rec in sl.log_records
        ]  # fmt: skip
