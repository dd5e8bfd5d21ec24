"""The shipped rules and dashboards work on live data in a real Prometheus.

One live setup for the whole file (see `support.prometheus`): a tiertrace workload exporting
with ``exporter="prometheus"`` over real Redis, PostgreSQL and Chroma, scraped every second by the
Debian ``prometheus`` binary with the shipped config and the shipped rule file. Against it:

* every recording rule of the shipped rule file has data, and the data makes sense (ratios in
  [0, 1], a latency for every tier, cost > 0);
* every query of both dashboards (built by `tools.dashboards`, with the Grafana
  variables resolved the way Grafana resolves them) runs and gives sensible values;
* cache effectiveness in Prometheus equals the workload's own ``tiertrace.stats()`` over the
  same period;
* ``/api/v1/rules`` reports every rule healthy and every alert in the state its data implies;
* ``tiertrace report --prometheus URL --json`` agrees with the PromQL of the design.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import yaml

from support import ASSETS
from support.prometheus import LivePrometheus
from tools import dashboards as _dashboards
from tools import rules as _rules

RULES_FILE = ASSETS / _rules.RULES_PATH
TIERS = ("redis", "postgresql", "chroma")  # in level order: the workload's default tiers
# Grafana's built-in variables; the [5m] covers every sample of the live run
GRAFANA_BUILTINS = {"$__rate_interval": "5m", "$__interval": "1s", "$__range": "5m"}
PP = 0.02  # two percentage points
CE_RULE = "tiertrace:cache_effectiveness:ratio_rate5m"
L1_HIT_RULE = 'tiertrace_tier:tiertrace_hit_ratio:rate5m{tiertrace_tier_level="1"}'
LATENCY_RULE = "tiertrace:lookup_latency_seconds:mean5m"
LOOKUPS = "tiertrace_lookup_duration_seconds_count"


def shipped_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def finite(value: str | float) -> float:
    number = float(value)
    assert math.isfinite(number), value
    return number


def by_tier(live: LivePrometheus, expr: str, at: float | None = None) -> dict[str, float]:
    return {k: finite(v) for k, v in live.values(expr, "tiertrace_tier", at).items()}


def settled() -> float:
    """A moment at which every rule evaluation at or before it has finished."""
    return time.time() - 2.0


# -- recording rules ---------------------------------------------------------------------------


def test_every_recording_rule_has_sensible_data(live_prometheus: LivePrometheus) -> None:
    live, at = live_prometheus, settled()
    records = {r["record"]: r["expr"] for r in shipped_rules() if "record" in r}
    assert set(records) == set(_rules.recording_rules())
    for name, expr in records.items():
        recorded = live.query(name, at)
        assert recorded, f"recording rule {name} has no series"
        evaluated = live.query(expr, at)
        assert len(evaluated) == len(recorded), name
        for sample in recorded + evaluated:
            assert finite(sample["value"][1]) >= 0, (name, sample)

    for key, target in _rules.TARGETS.items():
        assert live.values(f"tiertrace:target:{key}", at=at) == target

    hit = by_tier(live, "tiertrace_tier:tiertrace_hit_ratio:rate5m", at)
    assert set(hit) == set(TIERS)
    assert all(0.0 <= v <= 1.0 for v in hit.values()), hit
    assert 0.0 < hit["redis"] < 1.0, "the workload has Redis hits and misses"
    effectiveness = live.values(CE_RULE, at=at)
    assert 0.0 < effectiveness < 1.0

    reads = by_tier(live, "tiertrace_tier:reads:rate5m", at)
    accesses = by_tier(live, "tiertrace_tier:accesses:rate5m", at)
    assert set(reads) == set(accesses) == set(TIERS)
    for tier in TIERS:
        assert 0.0 < reads[tier] <= accesses[tier], tier
    assert live.values("tiertrace:lookups:rate5m", at=at) > 0

    # per-tier latency: every tier has a mean and a p95 (their order is the machine's business:
    # on a loaded machine a Redis round trip can take as long as a PostgreSQL one)
    mean = by_tier(live, "tiertrace_tier:access_latency_seconds:mean5m", at)
    assert set(mean) == set(TIERS) and all(0 < v < 10 for v in mean.values()), mean
    p95 = by_tier(live, "tiertrace_tier:access_latency_seconds:p95_5m", at)
    assert set(p95) == set(TIERS) and all(0 < v <= 10 for v in p95.values()), p95
    lookup_mean = live.values("tiertrace:lookup_latency_seconds:mean5m", at=at)
    lookup_p95 = live.values("tiertrace:lookup_latency_seconds:p95_5m", at=at)
    assert 0 < lookup_mean < 10 and 0 < lookup_p95 <= 10

    daily = by_tier(live, "tiertrace_tier:cost_usd:daily_projection", at)
    monthly = by_tier(live, "tiertrace_tier:cost_usd:monthly_projection", at)
    assert set(daily) == set(TIERS) and all(v > 0 for v in daily.values()), daily
    total = live.values("tiertrace:cost_usd:daily_projection", at=at)
    assert total > 0 and total == pytest.approx(sum(daily.values()), rel=1e-9)
    assert live.values("tiertrace:cost_usd:monthly_projection", at=at) == pytest.approx(30 * total)
    for tier in TIERS:
        assert monthly[tier] == pytest.approx(30 * daily[tier])


def test_advisor_gauges_name_the_queries_served_from_postgresql_every_time(
    live_prometheus: LivePrometheus,
) -> None:
    live = live_prometheus
    gauges = {
        name: {
            (s["metric"]["tiertrace_pattern"], s["metric"]["tiertrace_tier"]): finite(s["value"][1])
            for s in live.query(name)
        }
        for name in (
            "tiertrace_advisor_candidate_accesses",
            "tiertrace_advisor_candidate_latency_savings_seconds",
            "tiertrace_advisor_candidate_cost_savings_usd",
        )
    }
    accesses, latency, cost = gauges.values()
    assert accesses and set(accesses) == set(latency) == set(cost)
    assert len(accesses) <= 20
    # the workload reads a few hot queries with promote=False: PostgreSQL serves them every time
    unpromoted = [key for key in accesses if key[0].startswith("unpromoted:")]
    assert unpromoted and all(tier == "postgresql" for _, tier in unpromoted), unpromoted
    for key in unpromoted:
        assert accesses[key] >= 10 and cost[key] > 0, key
    stats = json.loads(live.stats_path.read_text())
    suggested = {
        (s["pattern"], s["tier"]) for s in stats["suggestions"] if s["kind"] == "pre-cache"
    }
    assert set(unpromoted) <= suggested


# -- dashboards --------------------------------------------------------------------------------


def label_values(live: LivePrometheus, definition: str, values: dict[str, str]) -> list[str]:
    """Resolve a Grafana ``label_values(selector, label)`` variable through the HTTP API."""
    found = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert found, definition
    selector, label = concrete(found[1], values), found[2]
    return list(live.api(f"/api/v1/label/{label}/values", **{"match[]": selector}))


def concrete(expr: str, values: dict[str, str]) -> str:
    """``expr`` with Grafana's built-in and the dashboard variables replaced by real values."""
    for name, value in GRAFANA_BUILTINS.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values[m[1]], expr)


def dashboard_queries() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, build in _dashboards.DASHBOARDS.items():
        board = build()
        for panel in board["panels"]:
            for target in panel["targets"]:
                yield name, panel, target


def test_dashboard_variables_resolve_to_the_live_job_tiers_and_operations(
    live_prometheus: LivePrometheus,
) -> None:
    live = live_prometheus
    for name, build in _dashboards.DASHBOARDS.items():
        variables = {v["name"]: v for v in build()["templating"]["list"]}
        assert label_values(live, variables["job"]["definition"], {}) == [live.job], name
        instances = label_values(live, variables["instance"]["definition"], {"job": live.job})
        assert instances == [live.metrics_url.split("/")[2]], name  # the scraped host:port
        chosen = {"job": live.job, "instance": ".*", "tier": ".*"}
        assert sorted(label_values(live, variables["tier"]["definition"], chosen)) == sorted(TIERS)
        if "operation" in variables:
            operations = set(label_values(live, variables["operation"]["definition"], chosen))
            assert {"GET", "SET", "SELECT"} <= operations, operations


def test_every_dashboard_query_returns_sensible_data_for_every_tier(
    live_prometheus: LivePrometheus,
) -> None:
    live = live_prometheus
    self_errors = "tiertrace_self_errors_total{" in live.exposition()
    candidates = live.values("tiertrace_advisor_candidate_accesses", "tiertrace_tier")
    ran = 0
    for tier in (".*", *TIERS):
        instance = live.metrics_url.split("/")[2]  # $instance as Grafana substitutes it
        values = {"job": live.job, "instance": instance, "tier": tier, "operation": ".*"}
        for board, panel, target in dashboard_queries():
            where = f"{board}: {panel['title']} {target['refId']} (tier {tier})"
            expr = concrete(target["expr"], values)
            if target["instant"]:
                points = [(s["metric"], s["value"][1]) for s in live.query(expr)]
            else:
                series = live.query_range(expr, seconds=10)
                points = [(s["metric"], v) for s in series for _, v in s["values"]]
            ran += 1
            # what may legitimately be empty: no internal error happened; access errors happen
            # on Redis only; the advisor's candidates are served by some tiers only; the TTL
            # what-if has no series before its projection window (60 s)
            if "tiertrace_self_errors_total" in expr:
                assert bool(points) == self_errors, where
                continue
            may_be_empty = (
                ('error_type!=""' in expr and tier not in (".*", "redis"))
                or ("tiertrace_advisor_candidate" in expr and tier not in (".*", *candidates))
                or "tiertrace_whatif_" in expr
            )
            assert points or may_be_empty, f"{where}: no data for\n{expr}"
            unit = panel["fieldConfig"]["defaults"]["unit"]
            for labels, text in points:
                value = finite(text)
                assert value >= 0, (where, labels, value)
                if unit == "percentunit":
                    assert value <= 1.0, (where, labels, value)
                if unit == "s":
                    assert 0 < value <= 10, (where, labels, value)
                if unit == "currencyUSD":
                    assert value > 0, (where, labels, value)
                if tier != ".*" and "tiertrace_tier" in labels:
                    assert labels["tiertrace_tier"] == tier, (where, labels)
            if panel["title"] == "Lookups served by":
                served = {labels["tiertrace_served_by"] for labels, _ in points}
                assert served == {*TIERS, "none"}, where
    assert ran > 100


# -- cache effectiveness: Prometheus against tiertrace.stats() ----------------------------------


def stats_since_start(live: LivePrometheus, t: float) -> tuple[float, float]:
    """(lookups served by level 1, all lookups) since init(), interpolated at unix time ``t``
    between the two snapshots of ``tiertrace.stats()`` around it (they are 1 s apart)."""
    deadline = time.monotonic() + 30
    history = live.history()
    while not history or history[-1][0] < t:
        assert time.monotonic() < deadline, f"no stats snapshot after {t}"
        time.sleep(0.2)
        history = live.history()

    def counts(snap: dict[str, Any]) -> tuple[float, float]:
        view = snap["total"]
        l1 = sum(view["served_by"][n] for n, row in view["tiers"].items() if row["level"] == 1)
        return l1, view["lookups"]

    for (ta, a), (tb, b) in pairwise(history):
        if ta <= t <= tb:
            w = (t - ta) / (tb - ta)
            (l1a, na), (l1b, nb) = counts(a), counts(b)
            return l1a + w * (l1b - l1a), na + w * (nb - na)
    raise AssertionError(f"{t} is before the first stats snapshot ({history[0][0]})")


def test_cache_effectiveness_equals_the_workloads_stats(live_prometheus: LivePrometheus) -> None:
    live = live_prometheus
    # 1. The recording rule against stats() over the samples the rule saw. The rule was last
    # evaluated at t_e; its [5m] window holds every scrape of the run, from s0 to s1. All lookup
    # series exist from the first scrape on (the fixture waits for them), so rate() extrapolates
    # them alike and the ratio of the two rate() sums is, within a few lookups, the ratio of the
    # counter increases between s0 and s1 (see support.prometheus). The same increases in
    # stats() are the differences of its `total` view (cumulative since init()) at s0 and s1,
    # interpolated between the snapshots written every second. Neither the `window` view (the
    # last `stats_window_s` seconds, not aligned with the scrapes) nor `total` alone (it also
    # counts the lookups made before the first scrape, while the cache was cold) covers that
    # period.
    [stamp] = live.query(f"timestamp({CE_RULE})")
    t_e = float(stamp["value"][1])
    rule = live.values(CE_RULE, at=t_e)
    window = live.api("/api/v1/query", query=f"{LOOKUPS}[5m]", time=f"{t_e:.3f}")["result"]
    firsts = {s["values"][0][0] for s in window}
    lasts = {s["values"][-1][0] for s in window}
    assert len(firsts) == 1 and len(lasts) == 1, "every lookup series has the same scrapes"
    s0, s1 = float(firsts.pop()), float(lasts.pop())
    assert s1 - s0 >= 10, "the comparison spans at least ten seconds of lookups"
    (l1_0, n0), (l1_1, n1) = stats_since_start(live, s0), stats_since_start(live, s1)
    in_stats = (l1_1 - l1_0) / (n1 - n0)
    assert rule == pytest.approx(in_stats, abs=PP), (rule, in_stats, s0, s1)

    # 2. Since init(), at one scrape: the raw counters start at 0 with the process, so their
    # ratio at the scrape time s is cache effectiveness since start, the same quantity as
    # stats()["total"]["cache_effectiveness"] at s. (An increase(...[range]) over the whole run
    # would miss the lookups before the first scrape and extrapolate.)
    since_start = (
        f'sum({LOOKUPS}{{tiertrace_served_by_level="1", job="{live.job}"}})'
        f' / sum({LOOKUPS}{{job="{live.job}"}})'
    )
    [last] = live.query(f"max(timestamp({LOOKUPS}))")
    s = float(last["value"][1])
    l1, n = stats_since_start(live, s)
    assert live.values(since_start, at=s) == pytest.approx(l1 / n, abs=PP)


# -- rules and alerts as Prometheus runs them ---------------------------------------------------


def test_every_rule_is_healthy_and_alerts_match_the_data(live_prometheus: LivePrometheus) -> None:
    live = live_prometheus
    groups = live.api("/api/v1/rules")["groups"]
    running = {r["name"]: r for g in groups for r in g["rules"]}
    shipped = {r.get("record") or r["alert"]: r for r in shipped_rules()}
    assert set(running) == set(shipped)
    for name, rule in running.items():
        assert rule["health"] == "ok" and not rule.get("lastError"), (name, rule)
        assert rule["type"] == ("alerting" if "alert" in shipped[name] else "recording"), name
        live.query(shipped[name]["expr"])  # and the expression runs through the API

    t = _rules.TARGETS
    now = {  # alert: (the value it watches, how it compares, the target)
        "TiertraceCacheEffectivenessLow": (live.values(CE_RULE), "<", t["cache_effectiveness"]),
        "TiertraceLookupLatencyHigh": (
            live.values(LATENCY_RULE),
            ">",
            t["lookup_latency_seconds_mean"],
        ),
        "TiertraceL1HitRateLow": (by_tier(live, L1_HIT_RULE)["redis"], "<", t["l1_hit_ratio"]),
    }
    for name, (value, op, target) in now.items():
        rule = running[name]
        breached = value < target if op == "<" else value > target
        if abs(value - target) < 0.05 * target:
            continue  # too close to call between the evaluation and this query
        # every `for:` is 10 minutes or more: the setup is younger, so pending at most
        assert rule["state"] == ("pending" if breached else "inactive"), (name, value, rule)
        for alert in rule["alerts"]:
            assert alert["state"] == "pending", (name, alert)
            alerted = finite(alert["value"])
            assert alerted < target if op == "<" else alerted > target, (name, alert)
    # the workload's design: L1 serves about half of the lookups, below the 70 % target
    assert running["TiertraceCacheEffectivenessLow"]["state"] == "pending"
    assert running["TiertraceTelemetryAbsent"]["state"] == "inactive"
    if "tiertrace_self_errors_total{" not in live.exposition():
        assert running["TiertraceSelfErrors"]["state"] == "inactive"
    assert not [r for r in running.values() if r.get("state") == "firing"]


# -- tiertrace report --prometheus ---------------------------------------------------------------


def test_report_from_prometheus_agrees_with_the_promql(live_prometheus: LivePrometheus) -> None:
    why = "tiertrace[cli] not installed (pip install -e '.[cli]')"
    pytest.importorskip("tiertrace._cli.report", reason=why)
    pytest.importorskip("tiertrace._cli.prometheus", reason=why)
    live = live_prometheus
    command = [sys.executable, "-m", "tiertrace._cli.main", "report", "--prometheus", live.url]
    done = subprocess.run(
        [*command, "--range", "5m", "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # the design's PromQL over the same 5m range, evaluated right after the report
    hit = by_tier(live, _rules.hit_ratio(("tiertrace_tier",), (), "5m"))
    effectiveness = live.values(_rules.served_ratio((), "5m"))
    assert report["source"]["kind"] == "prometheus"
    assert set(report["tiers"]) == set(TIERS)
    for tier in TIERS:
        row = report["tiers"][tier]
        assert row["hit_rate"] == pytest.approx(hit[tier], abs=PP), tier
        assert row["cost_per_day_usd"] > 0, tier
    assert report["cache_effectiveness"] == pytest.approx(effectiveness, abs=PP)
    assert report["served_by"]["none"] > 0 and report["lookups"] > 0
