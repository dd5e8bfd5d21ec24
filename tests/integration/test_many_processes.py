"""Four processes, one Prometheus: the shipped rules add the instances up to what each process
says of itself.

Four worker processes (``tests/support/workers.py``) each run a three-tier workload on the real
Redis, PostgreSQL and an embedded Chroma of their own, exporting with
``tiertrace.init(exporter="prometheus", prometheus_port=<own port>)``. One Debian Prometheus,
with the shipped ``prometheus.yml`` (scrape and evaluation every 1 s, one job listing the four
targets, ``honor_labels`` kept) and the shipped rule file copied unchanged, scrapes them all.

The workers warm up (every lookup series exists), Prometheus scrapes that state, then every
worker makes a fixed number of lookups, writes its own ``tiertrace.stats()`` and idles. So each
series' increase between its first and last scrape is exactly the measured phase, and the
counters themselves are the totals since ``init()``.
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import ASSETS, processes
from support import workers as many_workers
from support.prometheus import shipped_config, start_prometheus
from support.services import drop_table, fill_table, free_port
from support.tools import need

WORKERS = 4
LOOKUPS = 400  # per worker, in the measured phase
RATE = 100.0  # lookups per second per worker
JOB = "tiertrace-many"
TIERS = ("redis", "postgresql", "chroma")
SERIES_BUDGET = 2000  # DESIGN §4: one process exports at most ~2,000 series
CE_RULE = "tiertrace:cache_effectiveness:ratio_rate5m"
COST_RULE = "tiertrace_tier:cost_usd:daily_projection"
LOOKUP_COUNT = "tiertrace_lookup_duration_seconds_count"
COST_TOTAL = "tiertrace_cost_usd_total"


@dataclass(frozen=True)
class Worker:
    dir: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stats(self, name: str) -> dict[str, Any]:
        return dict(json.loads((self.dir / name).read_text()))


@dataclass(frozen=True)
class Cluster:
    prometheus: str
    workers: list[Worker]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        url = f"{self.prometheus}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.loads(resp.read().decode())
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def by(self, label: str, expr: str, at: float | None = None) -> dict[str, float]:
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in self.query(expr, at)}


def _wait(what: str, check: Callable[[], Any], timeout: float, cluster_dir: Path) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError, AssertionError) as error:
            last = error
        time.sleep(0.25)
    logs = "\n".join(
        f"--- {p.relative_to(cluster_dir)} ---\n{p.read_text(errors='replace')[-2000:]}"
        for p in sorted(cluster_dir.glob("**/*.log"))
    )
    pytest.fail(f"{what}: not within {timeout:.0f} s (last: {last!r})\n{logs}")


@pytest.fixture(scope="module")
def cluster(redis_url: str, pg_dsn: str) -> Iterator[Cluster]:
    need("prometheus")  # skip before anything is started
    workdir = Path(tempfile.mkdtemp(prefix="tiertrace-many-"))
    table = f"many_memories_{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        rows = [
            (many_workers.question(i), f"answer {i}")
            for i in range(many_workers.N_QUERIES)
            if many_workers.in_postgres(i)
        ]
        fill_table(pg_dsn, table, "query text PRIMARY KEY, body text NOT NULL", rows)
        workers = []
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        for n in range(WORKERS):
            home = workdir / f"worker-{n}"
            home.mkdir()
            port = free_port()
            config = {
                "dir": str(home),
                "port": port,
                "redis_url": redis_url.rsplit("/", 1)[0] + "/11",
                "pg_dsn": pg_dsn,
                "table": table,
                "key_prefix": f"tiertrace-many:{uuid.uuid4().hex[:8]}:",
                "seed": 1000 + n,
                "rate": RATE,
                "lookups": LOOKUPS,
            }
            (home / "config.json").write_text(json.dumps(config))
            proc = processes.spawn(
                [sys.executable, many_workers.__file__, str(home / "config.json")],
                home / "worker.log",
                cwd=home,
                env=env,
            )
            procs.append(proc)
            workers.append(Worker(home, port, proc))
        config_path = shipped_config(workdir, JOB, [w.instance for w in workers])
        prometheus, prometheus_url = start_prometheus(workdir, config_path)
        procs.append(prometheus)
        c = Cluster(prometheus_url, workers)

        def scraped(name: str) -> bool:
            """Prometheus holds each worker's lookup count of ``name`` (and scraped it twice)."""
            for w in workers:
                assert w.proc.poll() is None, f"worker {w.instance} exited"
                want = w.stats(name)["total"]["lookups"]
                sel = f'{LOOKUP_COUNT}{{instance="{w.instance}"}}'
                got = c.query(f"sum(min_over_time({sel}[2s])) == sum({sel})")
                if not got or float(got[0]["value"][1]) != want:
                    return False
            return True

        _wait("workers warm and scraped", lambda: scraped("ready.json"), 120, workdir)
        for w in workers:
            (w.dir / "go").touch()
        _wait("workers done and scraped", lambda: scraped("stats.json"), 60, workdir)
        time.sleep(2.5)  # a rule evaluation after the last scrape of every final value
        yield c
    finally:
        for proc in procs:
            processes.stop(proc)
        drop_table(pg_dsn, table)
        shutil.rmtree(workdir, ignore_errors=True)


def _l1_and_lookups(snap: dict[str, Any]) -> tuple[int, int]:
    view = snap["total"]
    l1 = sum(view["served_by"][n] for n, row in view["tiers"].items() if row["level"] == 1)
    return l1, view["lookups"]


def _shipped_rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(
        (ASSETS / "prometheus/rules/tiertrace.rules.yml").read_text()
    )
    return rules


def test_the_rules_aggregate_over_instances_not_per_instance() -> None:
    rules = _shipped_rules()
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "record" in rule and not rule["expr"].startswith("vector("):
                assert "instance" not in rule["expr"], rule["record"]
                assert "sum" in rule["expr"], rule["record"]


def test_cluster_cache_effectiveness_equals_the_sum_of_the_workers_stats(
    cluster: Cluster,
) -> None:
    # the measured phase: each worker's stats at the end minus at the ready mark
    l1 = lookups = 0
    for w in cluster.workers:
        (l1_end, n_end), (l1_ready, n_ready) = (
            _l1_and_lookups(w.stats("stats.json")),
            _l1_and_lookups(w.stats("ready.json")),
        )
        assert n_end - n_ready == LOOKUPS
        l1 += l1_end - l1_ready
        lookups += n_end - n_ready
    assert lookups == WORKERS * LOOKUPS
    [rule] = cluster.query(CE_RULE)
    assert rule["metric"] == {"__name__": CE_RULE}  # one cluster-wide series, no instance
    print(f"cache effectiveness: rule {float(rule['value'][1]):.4f}, workers' stats "
          f"{l1}/{lookups} = {l1 / lookups:.4f}")  # fmt: skip
    assert float(rule["value"][1]) == pytest.approx(l1 / lookups, abs=0.01)

    # since init(): the raw counters of all instances against the workers' totals, exactly
    totals = [_l1_and_lookups(w.stats("stats.json")) for w in cluster.workers]
    served = cluster.by("tiertrace_served_by_level", f"sum by (tiertrace_served_by_level) "
                        f"({LOOKUP_COUNT})")  # fmt: skip
    assert served["1"] == sum(a for a, _ in totals)
    assert sum(served.values()) == sum(n for _, n in totals)


def test_cluster_cost_per_tier_equals_the_sum_of_the_workers_stats(cluster: Cluster) -> None:
    finals = [w.stats("stats.json")["total"]["tiers"] for w in cluster.workers]
    in_stats = {t: sum(f[t]["cost_usd"] for f in finals) for t in TIERS}
    exported = cluster.by("tiertrace_tier", f"sum by (tiertrace_tier) ({COST_TOTAL})")
    assert set(exported) == set(TIERS)
    print(f"cost since init(): Prometheus {exported}, workers' stats {in_stats}")
    for tier in TIERS:
        assert in_stats[tier] > 0
        assert exported[tier] == pytest.approx(in_stats[tier], rel=1e-9), tier

    # the daily projection rule is the sum of the instances' projections, one series per tier
    [stamp] = cluster.query(f"max(timestamp({COST_RULE}))")
    t = float(stamp["value"][1])
    rule = cluster.query(COST_RULE, at=t)
    assert {s["metric"]["tiertrace_tier"] for s in rule} == set(TIERS)
    assert all("instance" not in s["metric"] for s in rule)
    # the shipped rule's expression, queried now at ``t``, sees the same samples as the parts
    expr = cluster.by("tiertrace_tier", _rule_expr(COST_RULE), at=t)
    per_instance = cluster.query(f"rate({COST_TOTAL}[1h]) * 86400", at=t)
    assert {s["metric"]["instance"] for s in per_instance} == {w.instance for w in cluster.workers}
    for s in rule:
        tier = s["metric"]["tiertrace_tier"]
        parts = [
            float(p["value"][1]) for p in per_instance if p["metric"]["tiertrace_tier"] == tier
        ]
        assert len(parts) == WORKERS
        assert expr[tier] == pytest.approx(sum(parts), rel=1e-9), tier
        # the recorded value was computed at ``t`` from the samples ingested by then: a scrape
        # stamped just before ``t`` and ingested just after it changes the extrapolated rate a
        # little, so the stored series matches its expression closely, not exactly
        assert float(s["value"][1]) == pytest.approx(expr[tier], rel=0.1), tier


def _rule_expr(record: str) -> str:
    """The expression of the shipped recording rule ``record``."""
    rules = _shipped_rules()
    (expr,) = [r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("record") == record]
    return str(expr)


def test_each_process_exports_fewer_series_than_the_budget(cluster: Cluster) -> None:
    for w in cluster.workers:
        with urllib.request.urlopen(f"http://{w.instance}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        tiertrace_samples = [s for s in samples if s.startswith("tiertrace_")]
        assert tiertrace_samples and len(samples) < SERIES_BUDGET, (w.instance, len(samples))
        # and Prometheus holds the same number of series for that instance
        [stored] = cluster.query(f'count({{instance="{w.instance}", job="{JOB}"}})')
        scrape_series = ("up", "scrape_duration_seconds", "scrape_samples_scraped",
                         "scrape_samples_post_metric_relabeling",
                         "scrape_series_added")  # fmt: skip
        assert float(stored["value"][1]) == len(samples) + len(scrape_series), w.instance
        print(f"{w.instance}: {len(samples)} series on /metrics")
