"""A live Prometheus scraping a live tiertrace workload, for the end-to-end tests of the assets.

The fixture ``live_prometheus`` (module-scoped: one setup per test file) starts

* a **workload** subprocess (this file run as a script): ``tiertrace.init(exporter="prometheus")``
  on a free loopback port and `tiertrace.TieredMemory` read-throughs over the session's private
  Redis (database 9), a table of its own in the session's PostgreSQL database and an embedded
  Chroma collection (``chromadb.PersistentClient`` in a temporary directory, embeddings from
  `tiertrace.HashingEmbeddingFunction`). About 150 lookups per second with a Zipf-skewed
  query mix, until it is terminated:

  - ``faq`` lookups (most of them): Redis TTL 1 s, so a hot query keeps hitting Redis while a
    cold one has expired by the time it comes back and is served by PostgreSQL (two thirds of
    the corpus) or by Chroma (the rest; the table never gets them, ``put_sql`` is not set);
  - ``unpromoted`` lookups (20 %): a few hot queries read through a memory with
    ``promote=False``, so they miss Redis and are served by PostgreSQL every time: the
    advisor's pre-cache candidates;
  - ``broken`` lookups (1 %): a ``GET`` of a Redis list, which fails with ``WRONGTYPE``:
    failed accesses (``error_type``) and lookups served by ``none``.

  Every second it writes ``tiertrace.stats()`` as JSON to ``stats.json`` and appends
  ``{"t": unix time, "stats": snapshot}`` to ``stats.jsonl``, so a test can compare
  Prometheus with the in-process figures at the same instants.

* **Prometheus** (the Debian ``prometheus`` binary) on a free loopback port, with the shipped
  ``prometheus/prometheus.yml`` rewritten only where a test must differ (scrape and evaluation
  every 1 s; the one scrape job, still ``honor_labels: true``, pointed at the workload) and the
  shipped rule files copied unchanged next to it. The ``[5m]`` and ``[1h]`` windows of the rules
  need no shortening: ``rate()`` needs two samples in its window, and they are there after 2 s.

The fixture waits until the access and lookup series, every recording rule and the advisor
gauges have data and ``MIN_SCRAPES`` scrapes are stored, yields a `LivePrometheus`, and then
stops both processes, drops the table and removes the temporary directories.

Prometheus is started only once every lookup series of the workload is on its /metrics, so
all of them share the same first and last sample in a window that covers the run: ``rate()``
then extrapolates them all by (nearly) the same factor, and a ratio of two ``rate()`` sums is,
within a few lookups, the ratio of the counter increases between the first and the last scrape.
(Only a series whose first value is small next to its increase is extrapolated a little less:
Prometheus stops extrapolating a counter backwards where it would reach zero.)

Debugging a failure: the fixture's failure messages end with the tail of ``workload.log`` and
``prometheus.log``; ``PYTHONPATH=tests python -m support.prometheus CONFIG.json`` runs the
workload alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support import ASSETS, processes
from support.services import drop_table, fill_table, free_port
from support.tools import need

TESTS = Path(__file__).resolve().parents[1]
PROMETHEUS_YML = ASSETS / "prometheus" / "prometheus.yml"
JOB = "tiertrace-live"
REDIS_DB = 9  # the other tests flush database 0 of the session's Redis
RATE = 150.0  # lookups per second
MIN_SCRAPES = 15  # stored scrapes before the tests run
STARTUP_TIMEOUT_S = 120.0  # workload up and warm (imports chromadb, seeds the stores)
DATA_TIMEOUT_S = 90.0  # Prometheus up and every series there

N_QUERIES = 120
ZIPF_S = 1.1
UNPROMOTED_SHARE, BROKEN_SHARE = 0.20, 0.01
UNPROMOTED = 4  # hot queries read with promote=False
BROKEN_KEY = "tiertrace-live:broken"


SUBJECTS = (
    "billing", "shipping", "returns", "passwords", "invoices", "discounts",
    "warranty", "delivery", "refunds", "accounts", "payments", "orders",
)  # fmt: skip
ASPECTS = (
    "say", "ask", "prefer", "dislike", "mention", "forget", "expect", "remember", "report",
    "question",
)  # fmt: skip


def question(i: int) -> str:
    """Query ``i`` of the corpus. Words only: `TieredMemory` keys normalize digits away."""
    return f"what did the user {ASPECTS[i // len(SUBJECTS)]} about {SUBJECTS[i % len(SUBJECTS)]}"


def in_postgres(i: int) -> bool:
    """Two thirds of the corpus are in PostgreSQL; all of it is in Chroma."""
    return i % 3 != 2


@dataclass(frozen=True)
class LivePrometheus:
    """What the fixture yields: where to ask, and where the workload's own figures are."""

    url: str  # Prometheus base URL, http://127.0.0.1:P
    metrics_url: str  # the workload's /metrics
    stats_path: Path  # the latest tiertrace.stats() snapshot (JSON), rewritten every second
    history_path: Path  # JSON lines {"t": unix time, "stats": snapshot}, one per second
    job: str  # the scrape job name: the `job` label of every series
    config_path: Path  # the generated prometheus.yml

    def api(self, path: str, **params: Any) -> Any:
        """``data`` of a Prometheus HTTP API answer; AssertionError with its error otherwise."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as resp:
                body = json.loads(resp.read().decode())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read().decode() or "{}")
        assert body.get("status") == "success", (path, params, body.get("error"), body)
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query: [{"metric": labels, "value": [time, "text"]}, ...] (vector results)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("/api/v1/query", **params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def values(self, expr: str, label: str | None = None, at: float | None = None) -> Any:
        """``{label value: float}`` of an instant query, or the one float when ``label`` is None."""
        result = self.query(expr, at)
        if label is None:
            assert len(result) == 1, (expr, result)
            return float(result[0]["value"][1])
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in result}

    def query_range(self, expr: str, seconds: float, step: float = 1.0) -> list[dict[str, Any]]:
        end = time.time()
        data = self.api(
            "/api/v1/query_range",
            query=expr,
            start=f"{end - seconds:.3f}",
            end=f"{end:.3f}",
            step=f"{step:g}",
        )
        return list(data["result"])

    def exposition(self) -> str:
        """The workload's /metrics text as Prometheus scrapes it."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as resp:
            return str(resp.read().decode())

    def history(self) -> list[tuple[float, dict[str, Any]]]:
        """The workload's stats snapshots so far, oldest first."""
        complete = self.history_path.read_text().split("\n")[:-1]  # not a line being written
        rows = [json.loads(line) for line in complete]
        return [(float(r["t"]), r["stats"]) for r in rows]


# -- the workload (runs in its own process: `python -m support.prometheus CONFIG.json`) --------


def _write_stats(stats_path: Path, history_path: Path, stop: threading.Event) -> None:
    import tiertrace

    with history_path.open("a") as history:
        while True:
            before = time.time()
            snap = tiertrace.stats()
            t = (before + time.time()) / 2
            tmp = stats_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(snap))
            os.replace(tmp, stats_path)
            history.write(json.dumps({"t": t, "stats": snap}) + "\n")
            history.flush()
            if stop.wait(max(0.0, 1.0 - (time.time() - before))):
                return


def run_workload(config_path: str) -> None:
    """The workload of the fixture (see the module documentation); runs until SIGTERM."""
    import chromadb
    import psycopg
    import redis
    from chromadb.config import Settings
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    import tiertrace
    from tiertrace import HashingEmbeddingFunction, TieredMemory

    cfg = json.loads(Path(config_path).read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    tiertrace.init(exporter="prometheus", prometheus_port=cfg["port"])

    r = redis.Redis.from_url(cfg["redis_url"])
    pg = psycopg.connect(cfg["pg_dsn"], autocommit=True)
    chroma = chromadb.PersistentClient(
        path=cfg["chroma_dir"], settings=Settings(anonymized_telemetry=False)
    )
    embed = HashingEmbeddingFunction()
    with suppress_instrumentation():
        collection = chroma.get_or_create_collection("live_memories", embedding_function=embed)
        collection.add(
            ids=[f"q{i}" for i in range(N_QUERIES)],
            documents=[f"answer {i}: {question(i)}" for i in range(N_QUERIES)],
        )
        r.delete(BROKEN_KEY)
        r.rpush(BROKEN_KEY, "not a string")
    sql = f"SELECT body FROM {cfg['table']} WHERE query = %s"
    common: dict[str, Any] = {
        "redis": r,
        "postgres": pg,
        "sql": sql,
        "chroma": collection,
        "embedding_function": embed,
    }
    faq = TieredMemory(**common, ttl_s={"redis": 1}, key_prefix="tiertrace-live:faq:")
    unpromoted = TieredMemory(**common, promote=False, key_prefix="tiertrace-live:direct:")

    rng = random.Random(20240607)
    queries = [question(i) for i in range(N_QUERIES)]
    weights = [1 / (i + 1) ** ZIPF_S for i in range(N_QUERIES)]
    hot_pg = [q for i, q in enumerate(queries) if in_postgres(i)][:UNPROMOTED]

    writer = threading.Thread(
        target=_write_stats,
        args=(Path(cfg["stats_path"]), Path(cfg["history_path"]), stop),
        daemon=True,
    )
    writer.start()
    interval, next_at = 1.0 / cfg["rate"], time.monotonic()
    while not stop.is_set():
        draw = rng.random()
        if draw < BROKEN_SHARE:
            with tiertrace.lookup(query_type="broken"), contextlib.suppress(redis.ResponseError):
                r.get(BROKEN_KEY)
        elif draw < BROKEN_SHARE + UNPROMOTED_SHARE:
            unpromoted.track_memory_access(rng.choice(hot_pg), query_type="unpromoted")
        else:
            faq.track_memory_access(rng.choices(queries, weights)[0], query_type="faq")
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:  # fell behind (a loaded machine): do not burst to catch up
            next_at = time.monotonic()
    writer.join(timeout=5)
    tiertrace.shutdown()
    r.close()
    pg.close()


# -- the fixture ---------------------------------------------------------------------------


def _poll(what: str, check: Any, timeout: float, *logs: Path, procs: tuple[Any, ...] = ()) -> Any:
    """Call ``check()`` until it returns something truthy; fail with the logs after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"{what}: a process exited ({proc.returncode})\n" + _logs(logs))
        try:
            found = check()
        except (OSError, ValueError, AssertionError, KeyError) as error:
            found, last = None, error
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout:.0f} s (last: {last!r})\n" + _logs(logs))


def _logs(logs: tuple[Path, ...]) -> str:
    return "\n".join(f"--- {p.name} ---\n{processes.tail(p)}" for p in logs)


def shipped_config(workdir: Path, job: str, targets: list[str]) -> Path:
    """The shipped prometheus.yml in ``workdir``, the one job ``job`` scraping ``targets``.

    Scrape and evaluation every second; ``honor_labels`` kept; the rule files copied unchanged.
    """
    import yaml

    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    [scrape] = config["scrape_configs"]
    assert scrape["honor_labels"] is True
    scrape |= {"job_name": job, "static_configs": [{"targets": targets}]}
    for pattern in config["rule_files"]:
        for rule_file in PROMETHEUS_YML.parent.glob(pattern):
            copy = workdir / rule_file.relative_to(PROMETHEUS_YML.parent)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rule_file, copy)
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_prometheus(
    workdir: Path, config_path: Path, *flags: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's ``prometheus`` with ``config_path`` on a free loopback port: (process, base URL).

    Its TSDB is ``workdir/tsdb`` and its log ``workdir/prometheus.log``; ``flags`` are added to
    its command line (``--enable-feature=…``). Skips the test when Prometheus is not installed.
    Stop it with `support.processes.stop`.
    """
    binary = need("prometheus")
    port = free_port()
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *flags,
    ]
    proc = processes.spawn(argv, workdir / "prometheus.log", cwd=workdir)
    return proc, f"http://127.0.0.1:{port}"


# (served_by, query_type) of every lookup series the workload makes
LOOKUP_SERIES = {
    ("redis", "faq"),
    ("postgresql", "faq"),
    ("chroma", "faq"),
    ("postgresql", "unpromoted"),
    ("none", "broken"),
}


def _warm(stats_path: Path, metrics_url: str) -> bool:
    """Every tier served a lookup and every lookup series is on the workload's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    served = json.loads(stats_path.read_text())["total"]["served_by"]
    if not all(served.get(t, 0) > 0 for t in ("redis", "postgresql", "chroma", "none")):
        return False
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    found = {
        (s.labels.get("tiertrace_served_by"), s.labels.get("tiertrace_query_type"))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "tiertrace_lookup_duration_seconds_count"
    }
    return found >= LOOKUP_SERIES


@pytest.fixture(scope="module")
def live_prometheus(redis_url: str, pg_dsn: str) -> Iterator[LivePrometheus]:
    """A live workload scraped by a live Prometheus with the shipped rules (see module doc)."""
    import redis
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    need("prometheus")  # skip before anything is started
    workdir = Path(tempfile.mkdtemp(prefix="tiertrace-live-prom-"))
    table = f"live_memories_{uuid.uuid4().hex[:8]}"
    workload_url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    workload: subprocess.Popen[bytes] | None = None
    prometheus: subprocess.Popen[bytes] | None = None
    work_log, prom_log = workdir / "workload.log", workdir / "prometheus.log"
    try:
        rows = [(question(i), f"answer {i}") for i in range(N_QUERIES) if in_postgres(i)]
        fill_table(pg_dsn, table, "query text PRIMARY KEY, body text NOT NULL", rows)
        with suppress_instrumentation():
            client = redis.Redis.from_url(workload_url)
            client.flushdb()
            client.close()

        port = free_port()
        stats_path, history_path = workdir / "stats.json", workdir / "stats.jsonl"
        config = {
            "port": port,
            "redis_url": workload_url,
            "pg_dsn": pg_dsn,
            "table": table,
            "chroma_dir": str(workdir / "chroma"),
            "stats_path": str(stats_path),
            "history_path": str(history_path),
            "rate": RATE,
        }
        (workdir / "workload.json").write_text(json.dumps(config))
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "PYTHONPATH": path}
        workload = processes.spawn(
            [sys.executable, "-m", "support.prometheus", str(workdir / "workload.json")],
            work_log,
            cwd=workdir,
            env=env,
        )
        # every lookup series exists before the first scrape (see the module documentation)
        _poll(
            "workload warm",
            lambda: _warm(stats_path, f"http://127.0.0.1:{port}/metrics"),
            STARTUP_TIMEOUT_S,
            work_log,
            procs=(workload,),
        )

        config_path = shipped_config(workdir, JOB, [f"127.0.0.1:{port}"])
        prometheus, prom_url = start_prometheus(workdir, config_path)
        live = LivePrometheus(
            url=prom_url,
            metrics_url=f"http://127.0.0.1:{port}/metrics",
            stats_path=stats_path,
            history_path=history_path,
            job=JOB,
            config_path=config_path,
        )
        _poll(
            "data in Prometheus",
            lambda: _has_data(live),
            DATA_TIMEOUT_S,
            prom_log,
            work_log,
            procs=(workload, prometheus),
        )
        yield live
    finally:
        processes.stop(prometheus)
        processes.stop(workload)
        drop_table(pg_dsn, table)
        shutil.rmtree(workdir, ignore_errors=True)


def _has_data(live: LivePrometheus) -> bool:
    import yaml

    rules = yaml.safe_load((ASSETS / "prometheus/rules/tiertrace.rules.yml").read_text())
    records = [r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r]
    scrapes = live.query(f'count_over_time(up{{job="{live.job}"}}[5m])')
    if not scrapes or float(scrapes[0]["value"][1]) < MIN_SCRAPES:
        return False
    needed = [
        "tiertrace_lookup_duration_seconds_count",
        "tiertrace_access_duration_seconds_count",
        "tiertrace_advisor_candidate_accesses",
        *records,
    ]
    return all(live.query(expr) for expr in needed)


if __name__ == "__main__":
    run_workload(sys.argv[1])
