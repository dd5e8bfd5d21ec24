"""The TTL what-if predicts what another TTL would have done with the same traffic.

A cache-aside workload (Redis in front of PostgreSQL, Zipf-distributed keys, a seeded RNG and a
fixed schedule of real time) runs once with TTL 1 s and once with TTL 5 s. What tiertrace
predicts from each run for the other TTL must be within 4 points of what the other run
measured. Time is scaled down (1 s / 5 s instead of minutes) so the test stays short; the
projection window is shortened to match. Every key is sampled here (``whatif_sample_rate=1``).
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import time
import zlib
from typing import Any

import psycopg
import pytest
import redis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import tiertrace
from support.services import fill_table
from tiertrace._advisor.whatif import GRID, Figures, WhatIf, fmt_ttl
from tiertrace._cli import html, report
from tiertrace._contract import names

N_KEYS = 400
ZIPF_S = 1.0
REQUESTS = 1800
INTERVAL_S = 1 / 150  # 150 requests per second for 12 s
SHORT, LONG = 1, 5  # seconds; both on the candidate grid
TOLERANCE = 0.04


def _zipf_keys(seed: int) -> list[int]:
    rng = random.Random(seed)
    weights = [1.0 / (rank**ZIPF_S) for rank in range(1, N_KEYS + 1)]
    ids = list(range(N_KEYS))
    rng.shuffle(ids)  # popularity is not key order
    return rng.choices(ids, weights=weights, k=REQUESTS)


@pytest.fixture
def items(pg_dsn: str) -> str:
    rows = [(i, f"v{i}") for i in range(N_KEYS)]
    return fill_table(pg_dsn, "whatif_items", "id int PRIMARY KEY, body text", rows)


def run_cache_aside(r: redis.Redis, pg_dsn: str, ttl_s: int, seed: int) -> dict[str, Any]:
    """The workload with TTL ``ttl_s``; returns ``tiertrace.stats()`` at its end."""
    r.flushdb()
    reader = InMemoryMetricReader()
    h = tiertrace.init(
        exporter="none",
        instrument=["redis", "psycopg"],
        whatif_sample_rate=1.0,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    assert h.whatif is not None
    h.whatif.min_window_s = 1.0  # the projection window, scaled down with the TTLs
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            start = time.monotonic()
            for i, k in enumerate(_zipf_keys(seed)):
                delay = start + i * INTERVAL_S - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                key = f"item:{k}"
                if r.get(key) is None:
                    row = conn.execute("SELECT body FROM whatif_items WHERE id = %s", (k,))
                    r.set(key, row.fetchone()[0], ex=ttl_s)  # type: ignore[index]
        tiertrace.flush()
        return tiertrace.stats()
    finally:
        tiertrace.shutdown()


def _row(snap: dict[str, Any], ttl_s: float) -> dict[str, Any]:
    return next(row for row in snap["ttl_curve"] if row["ttl_s"] == ttl_s)


def test_predicted_effectiveness_at_another_ttl_matches_a_run_with_that_ttl(
    r: redis.Redis, pg_dsn: str, items: str
) -> None:
    short = run_cache_aside(r, pg_dsn, SHORT, seed=17)
    long = run_cache_aside(r, pg_dsn, LONG, seed=17)
    measured = {
        SHORT: short["total"]["cache_effectiveness"],
        LONG: long["total"]["cache_effectiveness"],
    }
    # longer than observed: predicted from the 1 s run, measured in the 5 s run
    up = _row(short, LONG)["cache_effectiveness"]
    # shorter than observed: predicted from the 5 s run, measured in the 1 s run
    down = _row(long, SHORT)["cache_effectiveness"]
    print(f"\nwhat-if: TTL {SHORT}s -> {LONG}s predicted {up:.4f}, measured {measured[LONG]:.4f}")
    print(f"what-if: TTL {LONG}s -> {SHORT}s predicted {down:.4f}, measured {measured[SHORT]:.4f}")
    assert measured[LONG] - measured[SHORT] > 0.1  # the TTLs really differ on this traffic
    assert up == pytest.approx(measured[LONG], abs=TOLERANCE)
    assert down == pytest.approx(measured[SHORT], abs=TOLERANCE)
    # each run also predicts itself
    assert _row(short, SHORT)["cache_effectiveness"] == pytest.approx(measured[SHORT], abs=0.02)
    assert _row(long, LONG)["cache_effectiveness"] == pytest.approx(measured[LONG], abs=0.02)
    # what the curve says about its sample and its model
    for snap, observed in ((short, SHORT), (long, LONG)):
        row = _row(snap, LONG)
        assert row["sampled_keys"] == len(set(_zipf_keys(17)))
        assert row["sampled_reads"] == REQUESTS
        assert row["cache_effectiveness_low"] <= row["cache_effectiveness"]
        assert row["cache_effectiveness"] <= row["cache_effectiveness_high"]
        assert [x["ttl_s"] for x in snap["ttl_curve"]] == list(GRID)
        assert [x["ttl_s"] for x in snap["ttl_curve"] if x["observed"]] == [observed]
        assert snap["whatif"]["status"] == "ready"
        assert snap["whatif"]["observed_ttl_s"] == observed
        assert "not refreshed by reads" in snap["whatif"]["model"]
        # a longer TTL misses less (TTL from fill is not strictly monotone key by key)
        effectiveness = [x["cache_effectiveness"] for x in snap["ttl_curve"]]
        assert all(b - a > -0.005 for a, b in itertools.pairwise(effectiveness))
        costs = [x["cost_per_day_usd"] for x in snap["ttl_curve"]]
        assert costs[0] > costs[-1]
    # the suggestion names the smallest TTL that reaches the target (or says none does)
    ttl = [s for s in short["suggestions"] if s["kind"] == "ttl"]
    assert len(ttl) == 1
    target = short["whatif"]["target_cache_effectiveness"]
    reaching = [x["ttl_s"] for x in short["ttl_curve"] if x["cache_effectiveness"] > target]
    if reaching:
        assert ttl[0]["ttl_s"] == reaching[0] == short["whatif"]["target_ttl_s"]
        assert "is the smallest that reaches" in ttl[0]["message"]
    else:
        assert ttl[0]["message"].startswith("No TTL reaches the 70 % cache-effectiveness target")
    # the reports name that TTL and show the sample and the band
    rendered = report.from_snapshot(json.loads(json.dumps(short)))
    text = report.render_text(rendered)
    page = html.render_html(rendered)
    if reaching:
        needs = f"the 70 % cache-effectiveness target needs TTL {fmt_ttl(reaching[0])}"
        assert needs in text
        assert f"target needs TTL {fmt_ttl(reaching[0])}" in page
    samples = f"{len(set(_zipf_keys(17))):,} keys, {REQUESTS:,} reads"
    assert f"sample: {samples}" in text and f"Sample: {samples}" in page
    assert "95 % band" in text and "95 % band" in page
    assert 'id="ttl-curve"' in page and "<polygon" in page


def test_the_curve_waits_for_the_projection_window(make_telemetry: Any, r: redis.Redis) -> None:
    make_telemetry(instrument=["redis"], whatif_sample_rate=1.0)
    for i in range(20):
        r.get(f"user:{i % 3}:profile")
    snap = tiertrace.stats()
    assert snap["ttl_curve"] == []
    assert snap["whatif"]["status"] == "collecting"
    assert snap["whatif"]["min_window_s"] == 60.0
    assert snap["whatif"]["sampled_keys"] == 3
    assert [s for s in snap["suggestions"] if s["kind"] == "ttl"] == []


def test_gauges_carry_one_series_per_ttl(make_telemetry: Any, r: redis.Redis) -> None:
    t = make_telemetry(instrument=["redis"], whatif_sample_rate=1.0)
    t.handle.whatif.min_window_s = 0.0
    for i in range(30):
        if r.get(f"user:{i % 4}:profile") is None:
            r.set(f"user:{i % 4}:profile", "x", px=45_000)  # an observed TTL off the grid
    curve = tiertrace.stats()["ttl_curve"]
    assert [row["ttl_s"] for row in curve] == sorted([*GRID, 45.0])
    effectiveness = {a[names.TTL]: p.value for a, p in t.points(names.WHATIF_EFFECTIVENESS.name)}
    assert effectiveness == {f"{row['ttl_s']:g}": row["cache_effectiveness"] for row in curve}
    # the observed TTL's column starts at the first SET: of its 29 reads, 3 are cold misses
    # and key 0, read before the column existed, misses once more
    assert effectiveness["45"] == 25 / 29
    assert [row["sampled_reads"] for row in curve if row["ttl_s"] == 45.0] == [29]
    # the cost is a projection over the elapsed time: compare its shape, not its level
    cost = {a[names.TTL]: p.value for a, p in t.points(names.WHATIF_COST.name)}
    assert len(cost) == 16
    expected = {f"{row['ttl_s']:g}": row["cost_per_day_usd"] for row in curve}
    assert {k: v / cost["1"] for k, v in cost.items()} == pytest.approx(
        {k: v / expected["1"] for k, v in expected.items()}
    )


def test_the_same_keys_are_always_sampled() -> None:
    keys = [f"user:{i}:profile" for i in range(6400)]
    expected = {k for k in keys if zlib.crc32(k.encode()) < 2**32 // 64}
    first, second = WhatIf(), WhatIf()
    for key in keys:
        first.observe_read(key)
    for key in reversed(keys):
        second.observe_read(key)
    assert set(first.keys) == set(second.keys) == expected
    assert 70 <= len(expected) <= 130  # about 1/64 of them
    code = (
        "import json; from tiertrace._advisor.whatif import WhatIf; w = WhatIf(); "
        "[w.observe_read(f'user:{i}:profile') for i in range(6400)]; "
        "print(json.dumps(sorted(w.keys)))"
    )
    for seed in ("0", "12345"):  # another process, another str hash seed: the same sample
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": ":".join(sys.path)},
        )
        assert set(json.loads(done.stdout)) == expected


def test_the_sample_stays_under_its_cap_and_keeps_its_proportions() -> None:
    now = [0.0]
    w = WhatIf(sample_rate=1.0, capacity=100, clock=lambda: now[0])
    for t, key in enumerate(itertools.islice(itertools.cycle(range(1000)), 20_000)):
        now[0] = t * 0.01  # every key read every 10 s
        w.observe_read(f"k{key}")
    assert len(w.keys) <= 100
    assert w.halvings >= 4 and w.rate == 1.0 / 2**w.halvings
    rates = dict(zip(w.ttls(), w.hit_rates(), strict=True))
    assert rates[5.0] == 0.0  # read every 10 s: a 5 s TTL never hits
    assert rates[30.0] == pytest.approx(2 / 3, abs=0.05)  # fills at 0, hits at 10 and 20


def test_raw_keys_never_leave_the_process(make_telemetry: Any, r: redis.Redis) -> None:
    t = make_telemetry(instrument=["redis"], whatif_sample_rate=1.0)
    t.handle.whatif.min_window_s = 0.0
    raw = [f"user:{9087123000 + i}:profile" for i in range(50)]
    for key in raw * 3:
        if r.get(key) is None:
            r.set(key, "v", ex=60)
    snap = tiertrace.stats()
    assert snap["ttl_curve"] and snap["whatif"]["sampled_keys"] == 50
    tiertrace.flush()
    exported = json.dumps(snap, default=str)
    for span in t.spans():
        exported += span.name + json.dumps(dict(span.attributes or {}), default=str)
    for metric in ("tiertrace.whatif.cache_effectiveness", "tiertrace.whatif.cost.usd"):
        exported += json.dumps([a for a, _ in t.points(metric)])
    data = t.reader.get_metrics_data()
    exported += data.to_json() if data else ""
    for log in t.logs():
        exported += json.dumps(log.log_record.body, default=str)
        exported += json.dumps(dict(log.log_record.attributes or {}), default=str)
    assert "user:{id}:profile" in exported  # keys are there as templates only
    for key in raw:
        assert key not in exported
        assert key.split(":")[1] not in exported


def test_reads_the_sample_misses_count_as_hits_of_hot_keys() -> None:
    now = [0.0]
    w = WhatIf(sample_rate=1.0, clock=lambda: now[0])
    for t in range(100):  # one key read every 3 s
        now[0] = 3.0 * t
        w.observe_read("user:1")
    figures = Figures(
        elapsed_s=300.0,
        l1_reads=200.0,  # twice what the sample stands for: a hot key it did not catch
        l1_hits=100.0,
        l1_accesses=200.0,
        l1_cost_usd=0.02,
        deep_cost_usd=0.1,
        total_cost_usd=0.12,
        lookups=200.0,
        next_tier_price_usd=0.001,
        l1_write_price_usd=0.0001,
    )
    assert w.unsampled_share(200.0) == 0.5
    rows = {row["ttl_s"]: row for row in w.curve(figures)}
    assert rows[2.0]["l1_hit_rate"] == 0.5  # 0 % of the sampled half, 100 % of the rest
    assert rows[10.0]["l1_hit_rate"] == 0.875  # 75 % of half, plus the other half
    assert w.unsampled_share(100.0) == 0.0


def test_a_delete_after_a_cache_hit_is_replayed_after_that_hit(
    make_telemetry: Any, r: redis.Redis
) -> None:
    t = make_telemetry(instrument=["redis"], whatif_sample_rate=1.0)
    t.handle.whatif.min_window_s = 0.0
    r.set("user:1:profile", "x")
    assert r.get("user:1:profile") == b"x"  # a cold read for the simulation: it fills
    r.delete("user:1:profile")  # empties the simulated entry again
    r.set("user:1:profile", "x")
    assert r.get("user:1:profile") == b"x"  # so a miss at every TTL
    curve = tiertrace.stats()["ttl_curve"]
    assert [row["sampled_reads"] for row in curve] == [2] * len(GRID)
    assert [row["l1_hit_rate"] for row in curve] == [0.0] * len(GRID)
