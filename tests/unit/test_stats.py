"""``stats()`` read from the metric aggregation: totals equal to the slots, the time window over a
sequence of polls, each tier's first access from its slots, percentiles from the buckets.

Everything is recorded into a real `Metrics` (the slots the exporters read) on a clock the test
moves (`support.stats.StatsRig`)."""

from __future__ import annotations

import pytest

import tiertrace
from support.stats import START, StatsRig
from tiertrace._core.tiers import DEFAULT_TIERS, Tier
from tiertrace._runtime.config import Settings
from tiertrace._runtime.stats import MAX_RECORDS, histogram_quantile

REDIS, POSTGRES, CHROMA = DEFAULT_TIERS
PRICED_REDIS = Tier("redis", 1, "redis", 0.0001, cost_per_operation={"SET": 0.0003})


# --- percentiles the way PromQL's histogram_quantile estimates them ---------------------------


@pytest.mark.parametrize(
    ("q", "counts", "expected"),
    [
        (0.5, (0, 4, 0, 0), 1.5),  # linear inside (1, 2]: rank 2 of 4
        (0.25, (4, 0, 0, 0), 0.25),  # the first bucket starts at 0
        (0.5, (2, 2, 0, 0), 1.0),  # a rank on a boundary: the lower bucket's upper bound
        (0.5, (1, 0, 3, 0), 2.0 + 2.0 * (2 - 1) / 3),  # empty buckets are passed over
        (0.95, (1, 0, 0, 9), 4.0),  # in the unbounded bucket: the highest finite bound
        (0.95, (0, 0, 0, 0), 0.0),  # nothing recorded (PromQL: NaN)
    ],
)
def test_histogram_quantile_interpolates_within_the_bucket_like_promql(
    q: float, counts: tuple[int, ...], expected: float
) -> None:
    assert histogram_quantile(q, (1.0, 2.0, 4.0), counts) == pytest.approx(expected)


# --- total: straight from the slots -----------------------------------------------------------


def _traffic(rig: StatsRig) -> None:
    rig.access(PRICED_REDIS, 0.0002, "GET", hit=True, n=6)
    rig.access(PRICED_REDIS, 0.0004, "GET", hit=False, n=4)
    rig.access(PRICED_REDIS, 0.0003, "SET", hit=None, n=5)
    rig.access(PRICED_REDIS, 0.002, "GET", hit=None, error="TimeoutError", n=2)
    rig.access(POSTGRES, 0.003, "SELECT", hit=True, n=3)
    rig.lookup("redis", 1, 0.0002, 0.0001, n=6)
    rig.lookup("postgresql", 2, 0.0036, 0.0011, query_type="faq", n=3)
    rig.lookup("none", 0, 0.001, 0.0001)


def test_total_is_read_straight_from_the_slots() -> None:
    rig = StatsRig(tiers=(PRICED_REDIS, POSTGRES, CHROMA))
    _traffic(rig.at(1.0))
    total = rig.at(2.0).snapshot()["total"]
    redis = total["tiers"]["redis"]
    assert (redis["accesses"], redis["reads"], redis["hits"], redis["errors"]) == (17, 10, 6, 2)
    assert redis["hit_rate"] == pytest.approx(0.6)
    assert redis["mean_ms"] == pytest.approx((6 * 0.2 + 4 * 0.4 + 5 * 0.3 + 2 * 2.0) / 17)
    assert redis["cost_usd"] == pytest.approx(12 * 0.0001 + 5 * 0.0003)  # per operation
    assert redis["served"] == 6
    pg = total["tiers"]["postgresql"]
    assert (pg["accesses"], pg["reads"], pg["hits"], pg["errors"]) == (3, 3, 3, 0)
    assert pg["cost_usd"] == pytest.approx(0.003)
    assert total["tiers"]["chroma"]["accesses"] == 0
    # the cost is what tiertrace.cost.usd exports: count x price of the operation, per slot
    costs = rig.metrics.costs()
    assert redis["cost_usd"] == pytest.approx(costs["redis"][1])
    assert pg["cost_usd"] == pytest.approx(costs["postgresql"][1])
    assert total["cost_usd"] == pytest.approx(0.0027 + 0.003)
    assert sum(slot.count for _k, slot in rig.metrics.access.items()) == 20
    assert total["lookups"] == 10 == sum(slot.count for _k, slot in rig.metrics.lookup.items())
    assert total["served_by"] == {"redis": 6, "postgresql": 3, "chroma": 0, "none": 1}
    assert total["cache_effectiveness"] == pytest.approx(0.6)
    assert total["mean_lookup_latency_ms"] == pytest.approx((6 * 0.2 + 3 * 3.6 + 1.0) / 10)
    assert total["lookup_cost_usd"] == pytest.approx(6 * 0.0001 + 3 * 0.0011 + 0.0001)
    assert total["elapsed_s"] == pytest.approx(2.0)


def test_percentiles_are_interpolated_from_the_bucket_counts() -> None:
    rig = StatsRig(tiers=(PRICED_REDIS, POSTGRES, CHROMA))
    _traffic(rig.at(1.0))
    total = rig.at(2.0).snapshot()["total"]
    redis = total["tiers"]["redis"]
    # buckets (0.1, 0.25] ms: 6, (0.25, 0.5] ms: 4 + 5, (1, 2.5] ms: 2 — 17 accesses
    assert redis["p50_ms"] == pytest.approx(0.25 + 0.25 * (8.5 - 6) / 9)  # rank 8.5
    assert redis["p95_ms"] == pytest.approx(1.0 + 1.5 * (16.15 - 15) / 2)  # rank 16.15
    # lookups: (0.1, 0.25] ms: 6, (0.5, 1] ms: 1, (2.5, 5] ms: 3 — rank 9.5 of 10
    assert total["p95_lookup_latency_ms"] == pytest.approx(2.5 + 2.5 * (9.5 - 7) / 3)
    assert total["tiers"]["postgresql"]["p50_ms"] == pytest.approx(2.5 + 2.5 * 1.5 / 3)
    assert total["tiers"]["chroma"]["p95_ms"] == 0.0

    rig.access(CHROMA, 20.0, "query", n=1)  # past the last bound (10 s)
    assert rig.snapshot()["total"]["tiers"]["chroma"]["p95_ms"] == 10_000.0


def test_totals_of_the_what_if_equal_the_total_view() -> None:
    rig = StatsRig(tiers=(PRICED_REDIS, POSTGRES, CHROMA))
    _traffic(rig.at(1.0))
    elapsed, tiers, lookups = rig.at(4.0).stats.totals()
    total = rig.snapshot()["total"]
    assert elapsed == pytest.approx(4.0)
    assert lookups == total["lookups"] == 10
    for name in ("redis", "postgresql"):
        row = total["tiers"][name]
        assert tiers[name].accesses == row["accesses"]
        assert tiers[name].reads == row["reads"]
        assert tiers[name].hits == row["hits"]
        assert tiers[name].cost_usd == pytest.approx(row["cost_usd"])
    assert "chroma" not in tiers


# --- the window: the last stats_window_s seconds of a polled process --------------------------


def test_stats_window_s_is_a_setting_with_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().stats_window_s == 60.0
    monkeypatch.setenv("TIERTRACE_STATS_WINDOW_S", "30")
    try:
        handle = tiertrace.init(exporter="none")
        assert handle.settings.stats_window_s == 30.0
        assert handle.stats.window_s == 30.0
        assert handle.stats.metrics is handle.telemetry.metrics  # what the exporters read
    finally:
        tiertrace.shutdown()
    monkeypatch.setenv("TIERTRACE_STATS_WINDOW_S", "0")
    with pytest.raises(tiertrace.ConfigError, match="TIERTRACE_STATS_WINDOW_S"):
        tiertrace.init(exporter="none")


def _poll_run(rig: StatsRig, until_s: int) -> None:
    """One GET every 0.1 s, a miss (a lookup served by none, 4 ms) for the first 20 s and a hit
    (served by redis, 0.2 ms) after; ``stats()`` polled every 0.5 s after each access."""
    for step in range(1, until_s * 10 + 1):  # tenths of a second
        rig.at(step / 10)
        hit = step > 200
        seconds = 0.0002 if hit else 0.004
        rig.access(REDIS, seconds, hit=hit)
        rig.lookup("redis" if hit else "none", 1 if hit else 0, seconds, 0.0001)
        if step % 5 == 0:
            rig.snapshot()


def test_window_is_the_last_stats_window_s_seconds_when_stats_is_polled() -> None:
    rig = StatsRig(stats_window_s=10)
    _poll_run(rig, 29)
    rig.at(29.95)  # nothing happens at t = 29.95 ...
    rig.access(REDIS, 0.0002, hit=True).lookup("redis", 1, 0.0002, 0.0001)
    snap = rig.at(30.0).snapshot()  # ... and the poll at t = 30 s
    window, total = snap["window"], snap["total"]
    # polls every 0.5 s keep one record a second (t = 1, 2, ... 29); at t = 30 the window
    # starts at the record of t = 20, taken after the access of t = 20.0
    assert window["elapsed_s"] == pytest.approx(10.0)
    assert window["lookups"] == 91  # t = 20.1 ... 29.0, and the one at 29.95
    assert window["served_by"] == {"redis": 91, "postgresql": 0, "chroma": 0, "none": 0}
    assert window["cache_effectiveness"] == 1.0
    redis = window["tiers"]["redis"]
    assert (redis["accesses"], redis["reads"], redis["hits"]) == (91, 91, 91)
    assert redis["mean_ms"] == pytest.approx(0.2)
    assert redis["cost_usd"] == pytest.approx(91 * 0.0001)
    assert redis["p95_ms"] == pytest.approx(0.1 + 0.15 * 0.95)  # only the window's buckets
    assert window["p95_lookup_latency_ms"] == pytest.approx(0.1 + 0.15 * 0.95)
    assert window["lookup_cost_usd"] == pytest.approx(91 * 0.0001)
    # the total still holds the cold start
    assert total["lookups"] == 291
    assert total["served_by"]["none"] == 200
    assert total["cache_effectiveness"] == pytest.approx(91 / 291)
    assert total["tiers"]["redis"]["hits"] == 91
    # 200 accesses in (2.5, 5] ms, 91 in (0.1, 0.25] ms: rank 276.45 of 291
    assert total["tiers"]["redis"]["p95_ms"] == pytest.approx(2.5 + 2.5 * (276.45 - 91) / 200)
    assert total["elapsed_s"] == pytest.approx(30.0)
    # cache_effectiveness() is the window's, and records nothing
    records = len(rig.stats.records)
    assert rig.stats.cache_effectiveness() == 1.0
    assert len(rig.stats.records) == records


def test_a_first_call_covers_everything_since_init() -> None:
    rig = StatsRig(stats_window_s=10)
    for t in range(1, 26):
        rig.at(t).access(REDIS, 0.001, hit=t % 5 == 0).lookup("redis", 1, 0.001, 0.0001)
    assert rig.stats.cache_effectiveness() == 1.0  # since init too: there is no record yet
    snap = rig.at(25.0).snapshot()
    for key in ("lookups", "served_by", "cache_effectiveness", "elapsed_s", "cost_usd"):
        assert snap["window"][key] == snap["total"][key], key
    assert snap["window"]["elapsed_s"] == pytest.approx(25.0)
    assert snap["window"]["tiers"]["redis"]["hits"] == 5
    assert snap["window"]["tiers"]["redis"]["accesses"] == 25


def test_until_a_record_is_stats_window_s_old_the_window_starts_at_init() -> None:
    rig = StatsRig(stats_window_s=10)
    rig.at(1.0).access(REDIS).lookup("redis", 1, 0.001, 0.0001)
    rig.at(2.0).snapshot()
    rig.at(4.0).access(REDIS, hit=False).lookup("none", 0, 0.001, 0.0001)
    rig.at(5.0).snapshot()
    window = rig.at(8.0).snapshot()["window"]  # the records of t = 2 and 5 are too young
    assert window["elapsed_s"] == pytest.approx(8.0)
    assert window["lookups"] == 2
    assert window["cache_effectiveness"] == 0.5
    assert rig.stats.cache_effectiveness() == 0.5
    window = rig.at(12.0).snapshot()["window"]  # now the record of t = 2 starts it
    assert window["elapsed_s"] == pytest.approx(10.0)
    assert (window["lookups"], window["cache_effectiveness"]) == (1, 0.0)
    assert rig.stats.cache_effectiveness() == 0.0


def test_polled_less_often_the_window_reaches_back_to_the_latest_poll_that_old() -> None:
    rig = StatsRig(stats_window_s=10)
    rig.at(1.0).access(REDIS).lookup("redis", 1, 0.001, 0.0001)
    rig.at(2.0).snapshot()  # recorded: 1 lookup
    rig.at(5.0).access(REDIS, n=2).lookup("none", 0, 0.001, 0.0001, n=2)
    rig.at(9.0).snapshot()  # recorded: 3 lookups
    rig.at(40.0).access(REDIS, n=4).lookup("redis", 1, 0.001, 0.0001, n=4)
    window = rig.at(45.0).snapshot()["window"]  # the records of t = 2 and t = 9 are that old
    assert window["elapsed_s"] == pytest.approx(36.0)  # since the poll of t = 9
    assert window["lookups"] == 4
    assert window["tiers"]["redis"]["accesses"] == 4
    # 10 s later, the record of t = 45 starts the window: nothing happened since
    window = rig.at(55.0).snapshot()["window"]
    assert window["elapsed_s"] == pytest.approx(10.0)
    assert (window["lookups"], window["tiers"]["redis"]["accesses"]) == (0, 0)
    assert window["tiers"]["redis"]["projection"] == "no traffic"
    assert window["cache_effectiveness"] == 0.0
    assert rig.stats.cache_effectiveness() == 0.0


def test_records_are_one_a_second_at_most_and_bounded() -> None:
    rig = StatsRig(stats_window_s=10)
    for quarter in range(1, 401):  # polled every 0.25 s for 100 s
        rig.at(quarter / 4).access(REDIS).lookup("redis", 1, 0.001, 0.0001)
        rig.snapshot()
    times = [at - START for at, _values in rig.stats.records]
    assert times == [float(t) for t in range(90, 101)]  # the base of the window and after
    assert rig.stats.records[-1][1].typecode == "d"

    long = StatsRig(stats_window_s=3600)
    assert long.stats.spacing == 3600 / MAX_RECORDS
    for tens in range(1, 1441):  # polled every 10 s for 4 hours
        long.at(tens * 10.0).access(REDIS)
        long.snapshot()
    times = [at - START for at, _values in long.stats.records]
    assert times == [float(t) for t in range(10800, 14401, 60)]
    assert len(times) == MAX_RECORDS + 1


# --- first access and the projection gates ----------------------------------------------------


def test_a_tiers_first_access_is_when_its_first_slot_was_made() -> None:
    rig = StatsRig(stats_window_s=10, min_projection_window_s=5)
    rig.at(2.0).access(REDIS, op="SET", hit=None)
    rig.at(5.0).access(REDIS, op="GET", hit=True, n=3)
    rig.at(6.0).access(REDIS, op="SET", hit=None)  # same slot as at t = 2: still made then
    created = {key[1]: slot.created - START for key, slot in rig.metrics.access.items()}
    assert created == {"SET": 2.0, "GET": 5.0}
    rig.at(20.0).access(CHROMA, 0.02, op="query", n=2)
    snap = rig.at(23.0).snapshot()  # the first poll: the window covers everything
    total, window = snap["total"], snap["window"]
    assert total["tiers"]["redis"]["observed_s"] == pytest.approx(21.0)  # since t = 2
    assert window["tiers"]["redis"]["observed_s"] == pytest.approx(21.0)  # window 23 s here
    assert total["tiers"]["chroma"]["observed_s"] == pytest.approx(3.0)
    assert total["tiers"]["chroma"]["projection"] == "collecting"
    assert total["tiers"]["chroma"]["projection_needs_s"] == pytest.approx(2.0)
    assert window["tiers"]["chroma"]["projection_needs_s"] == pytest.approx(2.0)
    assert total["projection"] == "collecting" and total["cost_per_day_usd"] is None
    assert total["tiers"]["redis"]["cost_per_day_usd"] == pytest.approx(0.0005 / 21 * 86400)

    rig.at(25.0).access(CHROMA, 0.02, op="query")
    snap = rig.at(33.0).snapshot()  # the window: since the record of t = 23
    total, window = snap["total"], snap["window"]
    assert window["elapsed_s"] == pytest.approx(10.0)
    chroma = window["tiers"]["chroma"]
    assert chroma["accesses"] == 1
    assert chroma["observed_s"] == pytest.approx(10.0)  # min(window 10 s, since first 13 s)
    assert chroma["projection"] == "ready"
    assert chroma["cost_per_day_usd"] == pytest.approx(0.01 / 10 * 86400)
    assert total["tiers"]["chroma"]["cost_per_day_usd"] == pytest.approx(0.03 / 13 * 86400)
    assert window["tiers"]["redis"]["projection"] == "no traffic"  # nothing in the window
    assert window["tiers"]["redis"]["cost_per_day_usd"] == 0.0
    assert window["cost_per_day_usd"] == pytest.approx(0.01 / 10 * 86400)
    assert total["cost_per_day_usd"] == pytest.approx(0.0005 / 31 * 86400 + 0.03 / 13 * 86400)
