"""The Prometheus endpoint of exporter="prometheus" has exactly the names, labels and buckets of
the telemetry contract, and promtool accepts it."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
import redis

import tiertrace
from support.services import free_port
from support.tools import need, requires

BUCKETS = [
    "5e-05",
    "0.0001",
    "0.00025",
    "0.0005",
    "0.001",
    "0.0025",
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.1",
    "0.25",
    "0.5",
    "1.0",
    "2.5",
    "5.0",
    "10.0",
    "+Inf",
]


@pytest.fixture
def exposition(redis_url: str) -> Iterator[str]:
    port = free_port()
    tiertrace.init(exporter="prometheus", prometheus_port=port, instrument=["redis"])
    try:
        client = redis.Redis.from_url(redis_url)
        client.set("user:1:profile", "x")
        client.get("user:1:profile")
        client.get("user:2:profile")
        tiertrace.flush()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            yield resp.read().decode()
        client.close()
    finally:
        tiertrace.shutdown()


def _samples(text: str, name: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    ]


def test_exposition_has_the_contract_names_and_labels(exposition: str) -> None:
    hit = [
        s
        for s in _samples(exposition, "tiertrace_access_duration_seconds_count")
        if 'tiertrace_hit="true"' in s
    ]
    assert len(hit) == 1
    for label in (
        'tiertrace_tier="redis"',
        'tiertrace_tier_level="1"',
        'db_system_name="redis"',
        'db_operation_name="GET"',
    ):
        assert label in hit[0]
    assert hit[0].endswith(" 1.0")
    miss = [
        s
        for s in _samples(exposition, "tiertrace_access_duration_seconds_count")
        if 'tiertrace_hit="false"' in s
    ]
    assert len(miss) == 1 and miss[0].endswith(" 1.0")
    # writes have no hit; the exporter writes an absent label as "" (the same in PromQL)
    writes = [
        s
        for s in _samples(exposition, "tiertrace_access_duration_seconds_count")
        if 'tiertrace_hit=""' in s or "tiertrace_hit" not in s
    ]
    assert len(writes) == 1 and 'db_operation_name="SET"' in writes[0]
    lookups = _samples(exposition, "tiertrace_lookup_duration_seconds_count")
    served = sorted(s.split('tiertrace_served_by="')[1].split('"')[0] for s in lookups)
    assert served == ["none", "redis"]
    cost = _samples(exposition, "tiertrace_cost_usd_total")
    assert len(cost) == 3  # every configured tier, zero until used
    redis_cost = next(s for s in cost if 'tiertrace_tier="redis"' in s)
    assert float(redis_cost.rsplit(" ", 1)[1]) == pytest.approx(0.0003)
    assert "_ratio" not in exposition


def test_exposition_uses_the_second_scale_buckets(exposition: str) -> None:
    buckets = [
        s
        for s in _samples(exposition, "tiertrace_access_duration_seconds_bucket")
        if 'db_operation_name="SET"' in s
    ]
    assert [s.split('le="')[1].split('"')[0] for s in buckets] == BUCKETS


@requires("promtool")
def test_promtool_accepts_the_exposition(exposition: str) -> None:
    done = subprocess.run(
        [need("promtool"), "check", "metrics"],
        input=exposition,
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
