"""The optimization advisor as a pure data structure: a fake clock, no services involved."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiertrace._advisor.advisor import Advisor, Suggestion
from tiertrace._advisor.tables import Ring

PROFILE = "user:{id}:profile"


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(**kw: object) -> tuple[Advisor, Clock]:
    clock = Clock()
    return Advisor(clock=clock, **kw), clock  # type: ignore[arg-type]


def read_through(
    adv: Advisor,
    pattern: str,
    key: str | None,
    *,
    served: str = "postgresql",
    level: int = 2,
    l1_latency: float = 0.0003,
    deep_latency: float = 0.004,
    deep_cost: float = 0.001,
) -> None:
    """One cache-aside read as tiertrace reports it: L1 miss, deeper hit, lookup."""
    if level == 1:
        adv.observe_access("redis", 1, pattern, key, l1_latency, 0.0001, True, False)
        adv.observe_lookup(pattern, key, "redis", 1, l1_latency, 0.0001)
        return
    adv.observe_access("redis", 1, pattern, key, l1_latency, 0.0001, False, False)
    adv.observe_access(served, level, pattern, None, deep_latency, deep_cost, True, False)
    adv.observe_lookup(pattern, key, served, level, l1_latency + deep_latency, 0.0001 + deep_cost)


def pre_cache(adv: Advisor) -> list[Suggestion]:
    return [s for s in adv.suggestions() if s.kind == "pre-cache"]


def test_hot_key_read_50_times_from_postgresql_is_suggested() -> None:
    adv, clock = make()
    for _ in range(50):
        read_through(adv, PROFILE, "user:42:profile")
        clock.t += 2.0
    [s] = adv.candidates()
    assert s.kind == "pre-cache"
    assert s.pattern == PROFILE
    assert s.tier == "postgresql"
    assert s.accesses == 50
    assert s.key == "user:42:profile"
    assert s.latency_savings_s_per_day > 0
    assert s.cost_savings_usd_per_day > 0
    assert s.ttl_s == 6.0  # three times the 2 s between reads
    assert s.message.startswith(f"Pre-cache {PROFILE} in redis (TTL 6 s): read 50 times in 100 s")
    assert "from postgresql" in s.message
    assert pre_cache(adv) == [s]
    assert len({s, s}) == 1  # findings are hashable (evidence is left out of the hash)


def test_savings_come_from_observed_latency_and_cost() -> None:
    adv, clock = make()
    for i in range(20):  # other traffic: L1 hits at 1 ms, cost 0.0001
        adv.observe_access("redis", 1, "session:{id}", f"session:{i}", 0.001, 0.0001, True, False)
    for _ in range(41):  # 40 repeat reads over 400 s
        adv.observe_lookup(PROFILE, "user:7:profile", "postgresql", 2, 0.005, 0.0021)
        clock.t += 10.0
    clock.t -= 10.0
    [s] = adv.candidates()
    rate = 40 / 400.0
    assert s.evidence["l1_hit_latency_s"] == pytest.approx(0.001)
    assert s.evidence["serving_latency_s"] == pytest.approx(0.005)
    assert s.latency_savings_s_per_day == pytest.approx((0.005 - 0.001) * rate * 86400)
    assert s.cost_savings_usd_per_day == pytest.approx((0.0021 - 0.0001) * rate * 86400)
    assert s.ttl_s == 30.0


def test_without_l1_hits_the_mean_l1_read_latency_is_used() -> None:
    adv, clock = make()
    for _ in range(30):
        read_through(adv, PROFILE, "user:1:profile", l1_latency=0.0005)
        clock.t += 1.0
    [s] = adv.candidates()
    assert s.evidence["l1_hit_latency_s"] == pytest.approx(0.0005)


def test_without_any_l1_traffic_the_whole_lookup_is_saved() -> None:
    adv, clock = make()
    for _ in range(30):
        adv.observe_lookup("SELECT * FROM facts WHERE id = ?", None, "postgresql", 2, 0.01, 0.001)
        clock.t += 1.0
    [s] = adv.candidates()
    assert s.key is None
    assert s.evidence["l1_hit_latency_s"] == 0.0
    assert s.latency_savings_s_per_day == pytest.approx(0.01 * 29 / 60 * 86400)  # one bucket


def test_thousand_cold_keys_read_once_are_not_suggested() -> None:
    adv, clock = make()
    for i in range(1000):
        read_through(adv, PROFILE, f"user:{i}:profile")
        read_through(adv, f"doc:{i}", f"doc:{i}")  # a pattern of its own, read once too
        clock.t += 0.5
    assert adv.candidates() == []
    assert pre_cache(adv) == []


def test_a_key_must_be_read_more_than_min_accesses_times() -> None:
    adv, clock = make(min_accesses=10)
    for _ in range(10):
        read_through(adv, PROFILE, "user:5:profile")
        clock.t += 1.0
    assert adv.candidates() == []
    read_through(adv, PROFILE, "user:5:profile")
    assert [s.accesses for s in adv.candidates()] == [11]


def test_lookups_served_by_l1_are_not_candidates() -> None:
    adv, clock = make()
    for _ in range(100):
        read_through(adv, PROFILE, "user:3:profile", level=1)
        clock.t += 1.0
    assert adv.candidates() == []


def test_a_pattern_of_keys_each_read_a_few_times_is_a_candidate_without_a_key() -> None:
    adv, clock = make()
    for _rnd in range(3):
        for i in range(20):
            read_through(adv, PROFILE, f"user:{i}:profile", served="chroma", level=3)
            clock.t += 1.0
    [s] = adv.candidates()
    assert (s.tier, s.accesses, s.key) == ("chroma", 60, None)
    assert s.evidence["repeat_reads"] == 40
    assert s.ttl_s == 60.0  # each key comes back every 20 s


def test_million_distinct_keys_keep_tracked_entries_within_capacity() -> None:
    adv, clock = make(capacity=10_000)
    for i in range(1_000_000):
        key = f"doc:{i}"
        adv.observe_lookup("doc:{id}", key, "postgresql", 2, 0.002, 0.001)
        if i % 5 == 0:
            adv.observe_access("redis", 1, "doc:{id}", key, 0.0002, 0.0001, None, True)
        if i % 50 == 0:
            adv.observe_lookup(PROFILE, "user:1:profile", "postgresql", 2, 0.004, 0.001)
        if i % 10_000 == 0:
            tracked = adv.tracked()
            assert tracked["keys"] <= 10_000 and tracked["fills"] <= 10_000
        clock.t += 0.001
    tracked = adv.tracked()
    assert tracked["keys"] <= 10_000 and tracked["fills"] <= 10_000
    assert tracked["keys"] >= 5_000  # pruning keeps the busier half, it does not empty
    [hot] = adv.candidates()  # the hot key survived every prune
    assert (hot.pattern, hot.key, hot.accesses) == (PROFILE, "user:1:profile", 20_000)


def test_window_expiry_removes_stale_candidates() -> None:
    adv, clock = make(window_s=3600.0)
    for _ in range(50):
        read_through(adv, PROFILE, "user:42:profile")
        clock.t += 1.0
    assert len(adv.candidates()) == 1
    clock.t += 1800.0
    assert len(adv.candidates()) == 1  # still inside the window
    clock.t += 1800.0
    assert adv.candidates() == []
    assert pre_cache(adv) == []
    assert [s for s in adv.suggestions() if s.kind.startswith("top-")] == []


def test_counts_slide_with_the_window() -> None:
    adv, clock = make(window_s=3600.0)
    for _ in range(30):
        read_through(adv, PROFILE, "user:42:profile")
        clock.t += 1.0
    clock.t += 1800.0
    for _ in range(20):
        read_through(adv, PROFILE, "user:42:profile")
        clock.t += 1.0
    assert [s.accesses for s in adv.candidates()] == [50]
    clock.t += 1800.0  # the first 30 reads are now more than an hour old
    [s] = adv.candidates()
    assert s.accesses == 20


def test_candidates_returns_at_most_top_n_biggest_savings_first() -> None:
    adv, clock = make(top_n=5)
    for i in range(30):
        for _ in range(20 + i):
            adv.observe_lookup(f"pattern:{i}", f"key:{i}", "postgresql", 2, 0.003, 0.001)
            clock.t += 0.1
    found = adv.candidates()
    assert len(found) == 5
    assert len(pre_cache(adv)) == 30
    savings = [s.latency_savings_s_per_day for s in pre_cache(adv)]
    assert savings == sorted(savings, reverse=True)
    assert found == pre_cache(adv)[:5]


def test_wasted_fills_are_detected() -> None:
    adv, clock = make()
    for i in range(20):  # cache-aside fills nobody reads again
        read_through(adv, "doc:{id}", f"doc:{i}")
        adv.observe_access("redis", 1, "doc:{id}", f"doc:{i}", 0.0002, 0.0001, None, True)
    clock.t += 120.0  # older than the grace period (one bucket)
    [s] = [s for s in adv.suggestions() if s.kind == "wasted-fills"]
    assert (s.pattern, s.tier, s.accesses) == ("doc:{id}", "redis", 20)
    assert s.evidence["share"] == 1.0
    assert "20 of 20 fills of doc:{id} in redis were never read back" in s.message


def test_fills_read_back_are_not_wasted() -> None:
    adv, clock = make()
    for i in range(20):
        adv.observe_access("redis", 1, "doc:{id}", f"doc:{i}", 0.0002, 0.0001, None, True)
        clock.t += 1.0
        adv.observe_access("redis", 1, "doc:{id}", f"doc:{i}", 0.0002, 0.0001, True, False)
    clock.t += 120.0
    assert [s for s in adv.suggestions() if s.kind == "wasted-fills"] == []


def test_fresh_and_expired_fills_are_not_counted_as_wasted() -> None:
    adv, clock = make()
    for i in range(20):
        adv.observe_access("redis", 1, "doc:{id}", f"doc:{i}", 0.0002, 0.0001, None, True)
    assert [s for s in adv.suggestions() if s.kind == "wasted-fills"] == []  # too fresh
    clock.t += 4000.0
    assert [s for s in adv.suggestions() if s.kind == "wasted-fills"] == []  # out of window


def test_fills_overwritten_before_any_read_are_wasted() -> None:
    adv, clock = make()
    for _ in range(12):  # the same key written again and again, never read
        adv.observe_access("redis", 1, "counter:{id}", "counter:1", 0.0002, 0.0001, None, True)
        clock.t += 1.0
    [s] = [s for s in adv.suggestions() if s.kind == "wasted-fills"]
    assert (s.pattern, s.accesses, s.evidence["fills"]) == ("counter:{id}", 11, 12)


def test_fills_pushed_out_by_churn_count_as_wasted() -> None:
    adv, clock = make(capacity=1000)
    for i in range(20_000):  # far more unread fills per grace period than can be tracked
        adv.observe_access("redis", 1, "doc:{id}", f"doc:{i}", 0.0002, 0.0001, None, True)
        clock.t += 0.001
    assert adv.tracked()["fills"] <= 1000
    [s] = [s for s in adv.suggestions() if s.kind == "wasted-fills"]
    assert s.pattern == "doc:{id}"
    assert 19_000 <= s.accesses < 20_000
    assert s.evidence["fills"] == 20_000


def test_cost_share_finding_names_the_expensive_tier() -> None:
    adv, clock = make()
    for i in range(100):
        if i < 88:  # served by Redis
            adv.observe_access("redis", 1, "q:{id}", f"q:{i}", 0.0002, 0.0001, True, False)
            adv.observe_lookup("q:{id}", f"q:{i}", "redis", 1, 0.0002, 0.0001)
        else:  # falls through to Chroma
            adv.observe_access("redis", 1, "q:{id}", f"q:{i}", 0.0002, 0.0001, False, False)
            adv.observe_access("chroma", 3, "memories", None, 0.02, 0.01, True, False)
            adv.observe_lookup("q:{id}", f"q:{i}", "chroma", 3, 0.0202, 0.0101)
        clock.t += 1.0
    [s] = [s for s in adv.suggestions() if s.kind == "cost-share"]
    assert s.tier == "chroma"
    assert s.message == "chroma serves 12 % of lookups and 92 % of cost"
    assert s.evidence["lookup_share"] == pytest.approx(0.12)
    assert s.evidence["cost_share"] == pytest.approx(0.12 / (0.12 + 0.01), rel=1e-9)


def test_l1_hit_rate_under_target_names_the_patterns_that_miss_most() -> None:
    adv, _clock = make(l1_hit_rate_target=0.4)
    for i in range(100):
        pattern = "user:{id}:profile" if i % 3 else "session:{id}"
        hit = i % 5 == 0
        adv.observe_access("redis", 1, pattern, f"k{i}", 0.0002, 0.0001, hit, False)
    [s] = [s for s in adv.suggestions() if s.kind == "l1-hit-rate"]
    assert (s.tier, s.pattern, s.accesses) == ("redis", PROFILE, 100)
    assert s.evidence["hit_rate"] == pytest.approx(0.2)
    assert s.message.startswith("redis hit rate is 20 % (target 40 %); most misses: user:{id}")


def test_top_patterns_by_latency_and_cost_at_most_five_each() -> None:
    adv, _clock = make()
    for i in range(8):
        for _ in range(i + 1):
            adv.observe_lookup(f"q{i}", None, "postgresql", 2, 0.001 * (i + 1), 0.001 * (8 - i))
    by_latency = [s for s in adv.suggestions() if s.kind == "top-latency"]
    by_cost = [s for s in adv.suggestions() if s.kind == "top-cost"]
    assert [s.pattern for s in by_latency] == ["q7", "q6", "q5", "q4", "q3"]
    assert len(by_cost) == 5 and by_cost[0].pattern in {"q3", "q4"}
    assert by_latency[0].evidence["total"] == pytest.approx(8 * 0.008)


def test_suggestions_never_put_a_raw_key_in_pattern_or_message() -> None:
    adv, clock = make()
    raw = [f"user:{9000 + i}:profile" for i in range(5)]
    for _ in range(40):
        for key in raw:
            read_through(adv, PROFILE, key)
            adv.observe_access("redis", 1, PROFILE, key, 0.0002, 0.0001, None, True)
        clock.t += 3.0
    clock.t += 120.0
    found = adv.suggestions()
    assert {s.kind for s in found} >= {"pre-cache", "l1-hit-rate", "top-latency", "top-cost"}
    for s in found:
        assert s.pattern in (PROFILE, "*")
        for key in raw:
            assert key not in s.pattern and key not in s.message and key not in s.tier


NOTHING = {"keys": 0, "patterns": 0, "fills": 0, "tiers": 0}
ONE_TIER = {**NOTHING, "tiers": 1}


def still_advises(adv: Advisor, clock: Clock) -> None:
    """After garbage, a hot key read from PostgreSQL is still suggested as before."""
    for _ in range(50):
        read_through(adv, PROFILE, "user:42:profile")
        clock.t += 2.0
    [s] = adv.candidates()
    assert (s.kind, s.pattern, s.tier, s.accesses, s.ttl_s) == (
        "pre-cache", PROFILE, "postgresql", 50, 6.0)  # fmt: skip


# (arguments, faults swallowed, what is tracked afterwards): a value of the wrong type is
# either ignored or a swallowed fault, never an exception and never a finding
@pytest.mark.parametrize(
    ("args", "faults", "tracked"),
    [
        ((None, 1, "p", "k", 0.1, 0.1, True, False), 0, NOTHING),
        (("redis", "1", ["p"], {"k"}, 0.1, 0.1, True, False), 0, ONE_TIER),
        (("redis", 1, "p", "k", "slow", 0.1, True, False), 1, NOTHING),
        (("redis", 1, "p", "k", float("nan"), float("inf"), None, True), 0, NOTHING),
        (("redis", 1, "p", "k", -1.0, -5, 3, object()), 0, NOTHING),
        (("redis", None, None, 42, 0.1, 0.1, "yes", None), 0, ONE_TIER),
        (("redis", 1, {}, [], 0.1, 0.1, True, True), 0, ONE_TIER),
    ],
)
def test_observe_access_with_garbage_does_not_raise(
    args: tuple[object, ...], faults: int, tracked: dict[str, int]
) -> None:
    adv, clock = make()
    adv.observe_access(*args)  # type: ignore[arg-type]
    assert adv.suggestions() == []
    assert adv.candidates() == []
    assert (adv.faults, adv.tracked()) == (faults, tracked)
    still_advises(adv, clock)


@pytest.mark.parametrize(
    ("args", "faults", "tracked"),
    [
        ((None, None, None, None, None, None), 1, NOTHING),
        (("p", "k", "postgresql", "2", 0.1, 0.1), 1, NOTHING),
        (("p", "k", 5, 2, 0.1, 0.1), 0, NOTHING),
        (("p", "k", "postgresql", 2, float("nan"), 0.1), 0, NOTHING),
        (("p", "k", "postgresql", None, 0.1, 0.1), 1, NOTHING),
        (([], "k", "postgresql", 2, 0.1, 0.1), 0, NOTHING),
    ],
)
def test_observe_lookup_with_garbage_does_not_raise(
    args: tuple[object, ...], faults: int, tracked: dict[str, int]
) -> None:
    adv, clock = make()
    adv.observe_lookup(*args)  # type: ignore[arg-type]
    assert adv.suggestions() == []
    assert adv.candidates() == []
    assert (adv.faults, adv.tracked()) == (faults, tracked)
    still_advises(adv, clock)


def test_observe_lookup_with_a_garbage_key_keeps_the_lookup_and_drops_the_key() -> None:
    adv, _ = make()
    adv.observe_lookup("p", ["k"], "postgresql", 2, 0.1, 0.1)  # type: ignore[arg-type]
    found = [(s.kind, s.pattern, s.tier, s.accesses, s.key) for s in adv.suggestions()]
    assert found == [
        ("top-latency", "p", "postgresql", 1, None),
        ("top-cost", "p", "postgresql", 1, None),
    ]
    assert adv.candidates() == []
    assert (adv.faults, adv.tracked()) == (0, {**ONE_TIER, "patterns": 1})
    [top_latency, top_cost] = adv.suggestions()
    assert top_latency.evidence == top_cost.evidence == {
        "total": 0.1, "mean": 0.1, "share": 1.0, "lookups": 1.0, "rank": 1}  # fmt: skip


def test_swallowed_faults_are_counted_and_reported() -> None:
    seen: list[BaseException] = []

    def broken_clock() -> float:
        raise RuntimeError("clock")

    adv = Advisor(clock=broken_clock, on_error=seen.append)
    adv.observe_lookup("p", "k", "postgresql", 2, 0.1, 0.1)
    adv.observe_access("redis", 1, "p", "k", 0.1, 0.1, True, False)
    assert adv.faults == 2
    assert [str(e) for e in seen] == ["clock", "clock"]


def test_concurrent_observers_lose_no_reads() -> None:
    adv, _ = make()

    def work() -> None:
        for _ in range(5000):
            adv.observe_access("redis", 1, PROFILE, "user:1:profile", 0.0002, 0.0001, False, False)
            adv.observe_lookup(PROFILE, "user:1:profile", "postgresql", 2, 0.004, 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [s] = adv.candidates()
    assert s.accesses == 20_000
    assert s.evidence["repeat_reads"] == 19_999
    assert adv.faults == 0


def test_same_stream_gives_same_findings() -> None:
    def run() -> list[Suggestion]:
        adv, clock = make(capacity=100)
        for i in range(5000):
            read_through(adv, f"p{i % 7}", f"k{(i * 7919) % 300}", served="chroma", level=3)
            clock.t += 0.3
        return adv.suggestions()

    first = run()
    assert first and first == run()


def test_reset_forgets_everything() -> None:
    adv, _clock = make()
    for _ in range(50):
        read_through(adv, PROFILE, "user:42:profile")
    adv.reset()
    assert adv.suggestions() == []
    assert adv.tracked() == {"keys": 0, "patterns": 0, "fills": 0, "tiers": 0}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.floats(0, 10, allow_nan=False)), min_size=1, max_size=60
    ),
    st.integers(0, 400),
)
def test_window_sums_match_a_brute_force_count(events: list[tuple[int, float]], later: int) -> None:
    nb = 12
    events.sort()
    ring = Ring("x", 2, events[0][0], 0.0)
    for b, v in events:
        if b != ring.head:
            ring.roll(b, nb)
        ring.cur[0] += 1.0
        ring.cur[1] += v
    now = events[-1][0] + later
    inside = [v for b, v in events if b > now - nb]
    total = ring.totals(now, nb)
    assert total[0] == len(inside)
    assert math.isclose(total[1], sum(inside), abs_tol=1e-9)


def test_a_lone_read_recorded_at_once_leaves_the_tables_as_its_access_and_lookup_would() -> None:
    from tiertrace._advisor.recorder import Recorder

    now = [100.0]

    def recorder() -> Recorder:
        return Recorder(window_s=3600.0, capacity=1000, clock=lambda: now[0], buckets=60,
                        pattern_capacity=100, on_error=None)  # fmt: skip

    apart, together = recorder(), recorder()
    # an L1 hit, a PostgreSQL read that hit, a Chroma read that missed, an L1 read that failed
    reads = [("redis", 1, True), ("postgresql", 2, True), ("chroma", 3, False), ("redis", 1, None)]
    for i in range(60):
        now[0] += 7.0
        tier, level, hit = reads[i % 4]
        key, pattern = f"user:{i % 5}:profile", "user:{id}:profile"
        apart.observe_access(tier, level, pattern, key, 0.001 * i, 0.0001, hit, False)
        served = (tier, level) if hit else ("none", 0)
        apart.observe_lookup(pattern, key, *served, 0.001 * i, 0.0001)
        together.observe_alone(tier, level, pattern, key, 0.001 * i, 0.0001, hit)
    window = together.window(60.0)
    assert set(window.served) == {"redis", "postgresql", "none"}
    assert together.window(60.0) == apart.window(60.0)
