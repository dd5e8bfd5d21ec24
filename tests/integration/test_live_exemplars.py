"""From a latency bucket in Prometheus to the trace of the access behind it, live.

A workload process (`support.exemplars`: cache-aside lookups over the session's private Redis
and a table of its own in the session's PostgreSQL database, ``tiertrace.init(exporter=
"prometheus")`` with an SDK tracer provider writing every span to a JSON-lines file) is scraped
every second by Debian's Prometheus with ``--enable-feature=exemplar-storage``. Prometheus asks
for OpenMetrics by default, so it stores the exemplars of the histogram buckets; its
``/api/v1/query_exemplars`` then names trace and span ids that are spans the workload exported.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from opentelemetry.instrumentation.utils import suppress_instrumentation

from support import processes
from support.exemplars import KEYS
from support.prometheus import start_prometheus
from support.services import drop_table, fill_table, free_port
from support.tools import need

TESTS = Path(__file__).resolve().parents[1]
REDIS_DB = 10  # the other tests use databases 0 and 9 of the session's Redis
RATE = 100.0  # lookups per second
TIMEOUT_S = 30.0  # from the workload's start to exemplars in Prometheus
KIND = ("tiertrace_tier", "db_operation_name", "tiertrace_hit")
# a Redis hit, a Redis miss, the PostgreSQL read behind it and the Redis write after it
WANTED = {
    ("redis", "GET", "true"),
    ("redis", "GET", "false"),
    ("postgresql", "SELECT", "true"),
    ("redis", "SET", ""),
}


class Live:
    """The two processes of the test and what they leave behind."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.prometheus = ""
        self.started = time.time()

    def start(self, argv: list[str], log: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = processes.spawn(argv, self.workdir / log, cwd=self.workdir, **kwargs)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        parts = []
        for log in ("workload.log", "prometheus.log"):
            with contextlib.suppress(OSError):
                text = (self.workdir / log).read_text(errors="replace")[-2000:]
                parts.append(f"--- {log} ---\n{text}")
        return "\n".join(parts)

    def exemplars(self, metric: str) -> list[dict[str, Any]]:
        """The ``data`` of ``/api/v1/query_exemplars`` for ``metric`` since the start."""
        query = urllib.parse.urlencode(
            {"query": metric, "start": f"{self.started - 5:.3f}", "end": f"{time.time():.3f}"}
        )
        url = f"{self.prometheus}/api/v1/query_exemplars?{query}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read().decode())
        assert body["status"] == "success", body
        return list(body["data"])


@pytest.fixture
def live(redis_url: str, pg_dsn: str) -> Iterator[Live]:
    need("prometheus")  # skip before anything is started
    workdir = Path(tempfile.mkdtemp(prefix="tiertrace-exemplars-"))
    table = f"exemplar_profiles_{uuid.uuid4().hex[:8]}"
    workload_url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    run = Live(workdir)
    try:
        rows = [(i, f"profile {i}") for i in range(KEYS)]
        fill_table(pg_dsn, table, "id int PRIMARY KEY, body text NOT NULL", rows)
        with suppress_instrumentation():
            client = redis.Redis.from_url(workload_url)
            client.flushdb()
            client.close()
        port = free_port()
        config = {
            "port": port,
            "redis_url": workload_url,
            "pg_dsn": pg_dsn,
            "table": table,
            "spans_path": str(workdir / "spans.jsonl"),
            "rate": RATE,
        }
        (workdir / "workload.json").write_text(json.dumps(config))
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        run.start(
            [sys.executable, "-m", "support.exemplars", str(workdir / "workload.json")],
            "workload.log",
            env={**os.environ, "PYTHONPATH": path},
        )
        scrape = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "tiertrace-exemplars",
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                }
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(scrape))
        prometheus, run.prometheus = start_prometheus(
            workdir, workdir / "prometheus.yml", "--enable-feature=exemplar-storage"
        )
        run.procs.append(prometheus)
        yield run
    finally:
        for proc in reversed(run.procs):
            processes.stop(proc)
        drop_table(pg_dsn, table)
        shutil.rmtree(workdir, ignore_errors=True)


def _kinds(found: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(tier, operation, hit) of the series with exemplars; Prometheus drops empty labels."""
    kinds = set()
    for series in found:
        tier, operation, hit = (series["seriesLabels"].get(k, "") for k in KIND)
        if series["exemplars"]:
            kinds.add((tier, operation, hit))
    return kinds


def _series(live: Live, metric: str) -> list[dict[str, Any]]:
    """The exemplar series of ``metric``, once every kind in ``WANTED`` has some."""
    deadline = time.monotonic() + TIMEOUT_S
    last: Any = None
    while time.monotonic() < deadline:
        for proc in live.procs:
            if proc.poll() is not None:
                pytest.fail(f"a process exited ({proc.returncode})\n{live.logs()}")
        try:
            found = live.exemplars(metric)
        except OSError as error:  # Prometheus not listening yet
            found, last = [], error
        if _kinds(found) >= WANTED:
            return found
        last = found or last
        time.sleep(0.5)
    pytest.fail(f"no exemplars of {metric} within {TIMEOUT_S:.0f} s ({last!r})\n{live.logs()}")


def _any_series(live: Live, metric: str) -> list[dict[str, Any]]:
    """The exemplar series of ``metric``, once there is one."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        found = [s for s in live.exemplars(metric) if s["exemplars"]]
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"no exemplars of {metric} within {TIMEOUT_S:.0f} s\n{live.logs()}")


def test_prometheus_exemplars_name_traces_the_workload_exported(live: Live) -> None:
    access = _series(live, "tiertrace_access_duration_seconds_bucket")
    lookup = _any_series(live, "tiertrace_lookup_duration_seconds_bucket")
    for proc in live.procs:  # the workload writes its last spans as it stops
        processes.stop(proc)
    rows = [json.loads(line) for line in (live.workdir / "spans.jsonl").read_text().splitlines()]
    spans = {(r["trace_id"], r["span_id"]): r for r in rows}
    traces = {r["trace_id"] for r in rows}

    for series in access:
        labels = series["seriesLabels"]
        assert labels["__name__"] == "tiertrace_access_duration_seconds_bucket"
        assert labels["job"] == "tiertrace-exemplars"
        for ex in series["exemplars"]:
            ids = (ex["labels"]["trace_id"], ex["labels"]["span_id"])
            assert ids in spans, (ids, labels)  # an access span the workload exported
            assert spans[ids]["tier"] == labels["tiertrace_tier"]
            assert 0 < float(ex["value"]) <= float(labels["le"])
    assert _kinds(access) >= WANTED
    assert lookup  # lookups carry exemplars too: their lookup span, or the one access's span
    for series in lookup:
        for ex in series["exemplars"]:
            ids = (ex["labels"]["trace_id"], ex["labels"]["span_id"])
            assert ex["labels"]["trace_id"] in traces
            assert ids in spans, (ids, series["seriesLabels"])
