"""``tiertrace demo --workers N``, run as a user runs it: N processes, each serving /metrics on
its own port, and one combined report that adds the workers' own figures up."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from typing import Any

import psycopg
import pytest
import redis


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def test_demo_with_two_workers_adds_up_the_workers_figures(redis_url: str, pg_dsn: str) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OTEL_SDK_DISABLED": "false"}
    command = [
        sys.executable, "-m", "tiertrace._cli.main", "demo", "--workers", "2",
        "--duration", "5", "--facts", "200", "--no-live", "--json",
        "--redis-url", redis_url, "--postgres-dsn", pg_dsn,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stderr is not None
    head = ""
    while "targets: [" not in head:
        line = proc.stderr.readline()
        assert line, f"the demo ended before printing its ports:\n{head}"
        head += line
    ports = [int(p) for p in re.findall(r"'127\.0\.0\.1:(\d+)'", head)]
    assert len(ports) == len(set(ports)) == 2, head
    assert f"/metrics on 127.0.0.1:{ports[0]}, 127.0.0.1:{ports[1]}" in head
    assert "scrape_configs:\n  - job_name: tiertrace-demo\n" in head
    # every worker serves its own lookups while the demo runs
    deadline, serving = time.monotonic() + 90, set()
    while serving != set(ports) and time.monotonic() < deadline:
        for port in set(ports) - serving:
            try:
                if "tiertrace_lookup_duration_seconds_count{" in _metrics(port):
                    serving.add(port)
            except OSError:
                pass
        time.sleep(0.2)
    assert serving == set(ports)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, head + err

    snap = json.loads(out)
    workers: list[dict[str, Any]] = snap["workers"]
    assert [w["port"] for w in snap["demo"]["workers"]] == ports
    assert len(workers) == 2 and all(w["total"]["lookups"] > 0 for w in workers)
    total = snap["total"]
    assert total["lookups"] == sum(w["total"]["lookups"] for w in workers)
    assert snap["demo"]["lookups"] == sum(w["demo"]["lookups"] for w in workers)
    assert snap["demo"]["lookups"] == total["lookups"]
    for name, count in total["served_by"].items():
        assert count == sum(w["total"]["served_by"][name] for w in workers), name
    for tier, row in total["tiers"].items():
        for key in ("accesses", "reads", "hits", "served"):
            assert row[key] == sum(w["total"]["tiers"][tier][key] for w in workers), (tier, key)
        parts = [w["total"]["tiers"][tier]["cost_usd"] for w in workers]
        assert row["cost_usd"] == pytest.approx(sum(parts), rel=1e-12), tier
        assert row["hit_rate"] == pytest.approx(row["hits"] / row["reads"])
    # ratios come from the sums, not from averaging the workers' ratios
    assert total["cache_effectiveness"] == pytest.approx(
        total["served_by"]["redis"] / total["lookups"]
    )
    assert "tiertrace report: tiertrace demo" in err
    assert f"{total['lookups']:,} lookups in" in err

    # each worker removed its own keys and table
    client = redis.Redis.from_url(redis_url)
    assert list(client.scan_iter(match="tiertrace-demo:*")) == []
    client.close()
    with psycopg.connect(pg_dsn) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'tiertrace_demo_memories%'"
        ).fetchone()
        assert left == (0,)
