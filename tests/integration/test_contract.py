"""One contract, used everywhere: `tiertrace._contract` against the runtime and every asset.

* `_contract.names` states DESIGN §4, and the runtime registers and exports exactly those
  instruments (names, kinds, units, descriptions, bucket bounds, attribute keys, scope);
* every recording rule and alert of the shipped rules file is built by `_contract.promql`;
* the dashboards' queries come from the same builders, and so do the report's Prometheus queries;
* the three targets of `_contract.targets` have one value in the rules file, the dashboard
  thresholds, ``init()``'s defaults, ``tiertrace.stats()["targets"]`` and the report;
* the runtime neither imports the build-time generators nor hard-codes a repository path.
"""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from opentelemetry.sdk.metrics import Meter, MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

import tiertrace
from support.assets import ASSETS, RULES, rule_list
from tiertrace._cli import prometheus as report_prometheus
from tiertrace._cli import report
from tiertrace._contract import names, promql, targets
from tiertrace._contract.promql import (
    ACC,
    BY_TIER,
    BY_TIER_LEVEL,
    LKP,
    MONTH_DAYS,
    READS,
    cost,
    hit_ratio,
    mean,
    quantile,
    served_ratio,
    sum_rate,
)
from tiertrace._runtime.config import Settings
from tools import dashboards as tool_dashboards
from tools import generate

SRC = Path(tiertrace.__file__).resolve().parent

# DESIGN §4, restated: OTel name -> kind, unit, Prometheus name
DESIGN_4 = {
    "tiertrace.access.duration": ("histogram", "s", "tiertrace_access_duration_seconds"),
    "tiertrace.lookup.duration": ("histogram", "s", "tiertrace_lookup_duration_seconds"),
    "tiertrace.cost.usd": ("counter", "{USD}", "tiertrace_cost_usd_total"),
    "tiertrace.advisor.candidate.accesses": (
        "gauge", "{access}", "tiertrace_advisor_candidate_accesses"),
    "tiertrace.advisor.candidate.latency_savings": (
        "gauge", "s", "tiertrace_advisor_candidate_latency_savings_seconds"),
    "tiertrace.advisor.candidate.cost_savings.usd": (
        "gauge", "{USD}", "tiertrace_advisor_candidate_cost_savings_usd"),
    "tiertrace.self.errors": ("counter", "{error}", "tiertrace_self_errors_total"),
    "tiertrace.whatif.cache_effectiveness": (
        "gauge", "{ratio}", "tiertrace_whatif_cache_effectiveness"),
    "tiertrace.whatif.cost.usd": ("gauge", "{USD}", "tiertrace_whatif_cost_usd"),
}  # fmt: skip
SPECS = {i.name: i for i in names.INSTRUMENTS}
KINDS = {
    "create_histogram": "histogram",
    "create_counter": "counter",
    "create_observable_counter": "counter",
    "create_gauge": "gauge",
    "create_observable_gauge": "gauge",
}


def test_names_state_design_4() -> None:
    assert {n: (i.kind, i.unit, i.prometheus) for n, i in SPECS.items()} == DESIGN_4
    assert names.BUCKETS == (
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    )  # fmt: skip
    assert names.SCOPE == "tiertrace"
    assert names.ACCESS_DURATION.labels == (
        "tiertrace_tier", "tiertrace_tier_level", "tiertrace_hit", "db_system_name",
        "db_operation_name", "error_type")  # fmt: skip
    assert names.LOOKUP_DURATION.labels == (
        "tiertrace_served_by", "tiertrace_served_by_level", "tiertrace_cache_hit",
        "tiertrace_query_type")  # fmt: skip


# -- the runtime ---------------------------------------------------------------------------------
@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str, str]]:
    """(kind, name, unit, description) of every instrument created on an SDK meter."""
    seen: list[tuple[str, str, str, str]] = []
    for method, kind in KINDS.items():
        original = getattr(Meter, method)

        def spy(self: Meter, *args: Any, _o: Any = original, _k: str = kind,
                **kwargs: Any) -> Any:  # fmt: skip
            bound = inspect.signature(_o).bind(self, *args, **kwargs).arguments
            seen.append((_k, bound["name"], bound.get("unit", ""), bound.get("description", "")))
            return _o(self, *args, **kwargs)

        monkeypatch.setattr(Meter, method, spy)
    return seen


@pytest.fixture
def workload(
    registered: list[tuple[str, str, str, str]], r: redis.Redis, pg_dsn: str, table: str
) -> Iterator[tuple[InMemoryMetricReader, list[tuple[str, str, str, str]]]]:
    import psycopg

    reader = InMemoryMetricReader()
    tiertrace.init(
        exporter="none",
        meter_provider=MeterProvider(metric_readers=[reader]),
        advisor_min_accesses=1,
        instrument=["redis", "psycopg"],
    )
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for _ in range(5):
                with tiertrace.lookup(query_type="memory"):
                    r.get("memory:1")  # L1 miss
                    conn.execute(f"SELECT body FROM {table} WHERE id = 1").fetchall()  # L2 hit
                r.set("memory:1", "one")
                r.get("memory:1")  # an implicit lookup served by L1
                r.delete("memory:1")
        yield reader, registered
    finally:
        tiertrace.shutdown()


def test_runtime_instruments_are_the_contract(
    workload: tuple[InMemoryMetricReader, list[tuple[str, str, str, str]]],
) -> None:
    reader, registered = workload
    data = reader.get_metrics_data()
    exported: dict[str, Any] = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            if sm.scope.name != names.SCOPE:
                continue
            for metric in sm.metrics:
                exported[metric.name] = metric
    for name in ("tiertrace.access.duration", "tiertrace.lookup.duration", "tiertrace.cost.usd"):
        assert name in exported, sorted(exported)
    for name, metric in exported.items():
        spec = SPECS[name]
        assert (metric.unit, metric.description) == (spec.unit, spec.description), name
        for point in metric.data.data_points:
            assert set(point.attributes or {}) <= set(spec.attributes), (name, point.attributes)
            if isinstance(point, HistogramDataPoint):
                assert tuple(point.explicit_bounds) == names.BUCKETS, name
    access = exported["tiertrace.access.duration"].data.data_points
    assert {names.TIER, names.TIER_LEVEL, names.HIT} <= set().union(
        *(set(p.attributes or {}) for p in access)
    )
    ours = [entry for entry in registered if entry[1] in SPECS or entry[1].startswith("tiertrace")]
    for kind, name, unit, description in ours:
        spec = SPECS[name]
        assert (kind, unit, description) == (spec.kind, spec.unit, spec.description), name
    # every instrument of the contract is registered with the SDK or bridged into its data
    assert {name for _, name, _, _ in ours} | set(exported) == set(SPECS)


# -- rules ---------------------------------------------------------------------------------------
def expected_recording_rules() -> dict[str, str]:
    acc = f"{ACC}_count"
    tl = BY_TIER_LEVEL
    return {t.record: f"vector({t.prometheus_value})" for t in targets.TARGETS} | {
        promql.LOOKUPS_RATE: sum_rate((), f"{LKP}_count", (), "5m"),
        promql.TIER_READS_RATE: sum_rate(tl, acc, (), "5m", READS),
        promql.TIER_ACCESSES_RATE: sum_rate(tl, acc, (), "5m"),
        promql.TIER_HIT_RATIO: hit_ratio(tl, (), "5m"),
        promql.CACHE_EFFECTIVENESS: served_ratio((), "5m"),
        promql.LOOKUP_LATENCY_MEAN: mean(LKP, (), (), "5m"),
        promql.LOOKUP_LATENCY_P95: quantile(0.95, LKP, (), (), "5m"),
        promql.TIER_ACCESS_LATENCY_MEAN: mean(ACC, tl, (), "5m"),
        promql.TIER_ACCESS_LATENCY_P95: quantile(0.95, ACC, tl, (), "5m"),
        promql.TIER_COST_DAILY: cost(tl, (), "1h"),
        promql.COST_DAILY: cost((), (), "1h"),
        promql.TIER_COST_MONTHLY: cost(tl, (), "1h", MONTH_DAYS),
        promql.COST_MONTHLY: cost((), (), "1h", MONTH_DAYS),
    }


def test_shipped_rules_are_built_by_the_contract() -> None:
    shipped = {r["record"]: r["expr"] for r in rule_list() if "record" in r}
    assert shipped == expected_recording_rules()
    alerts = {r["alert"]: r["expr"] for r in rule_list() if "alert" in r}
    assert alerts["TiertraceCacheEffectivenessLow"].startswith(
        f"{promql.CACHE_EFFECTIVENESS}\n  < on() {targets.CACHE_EFFECTIVENESS.record}\n"
    )
    assert alerts["TiertraceLookupLatencyHigh"].startswith(
        f"{promql.LOOKUP_LATENCY_MEAN}\n  > on() {targets.LOOKUP_LATENCY.record}\n"
    )
    assert f"group_left() {targets.L1_HIT_RATE.record}\n" in alerts["TiertraceL1HitRateLow"]
    assert alerts["TiertraceL1HitRateLow"].startswith(promql.TIER_HIT_RATIO + "{")
    assert alerts["TiertraceTelemetryAbsent"] == f"absent({ACC}_count)"
    assert names.SELF_ERRORS.prometheus in alerts["TiertraceSelfErrors"]


# -- dashboards ----------------------------------------------------------------------------------
BUILDERS = ("sum_rate", "hit_ratio", "served_ratio", "mean", "quantile", "cost")


def test_dashboard_queries_come_from_the_builders(monkeypatch: pytest.MonkeyPatch) -> None:
    built: set[str] = set()

    def recording(fn: Callable[..., str]) -> Callable[..., str]:
        def wrapper(*args: Any, **kwargs: Any) -> str:
            out = fn(*args, **kwargs)
            built.add(out)
            return out

        return wrapper

    for name in BUILDERS:
        monkeypatch.setattr(tool_dashboards, name, recording(getattr(promql, name)))
    boards = {name: build() for name, build in tool_dashboards.DASHBOARDS.items()}
    exprs = [t["expr"] for b in boards.values() for p in b["panels"] for t in p["targets"]]
    assert len(exprs) > 25
    others = [e for e in exprs if e not in built]
    # the only hand-written queries: advisor gauges (the table and the top 10), the what-if
    # gauges and the self-error increase
    assert len(others) == 7, others
    gauges = (*names.ADVISOR_GAUGES, *names.WHATIF_GAUGES, names.SELF_ERRORS)
    for expr in others:
        assert "rate(" not in expr and "histogram_quantile" not in expr, expr
        assert any(i.prometheus in expr for i in gauges), expr
    sel = ('job=~"$job"', 'instance=~"$instance"', 'tiertrace_tier=~"$tier"')
    ri = "$__rate_interval"
    for needed in (
        served_ratio(sel[:2], ri),
        hit_ratio(BY_TIER, sel, ri),
        mean(LKP, (), sel[:2], ri),
        cost(BY_TIER, sel, ri),
        cost(BY_TIER, sel, ri, MONTH_DAYS),
    ):
        assert needed in exprs, needed
    committed = {
        p.name: json.loads(p.read_text("utf-8"))
        for p in (ASSETS / "grafana" / "dashboards").glob("*.json")
    }
    assert committed == boards


# -- the report ----------------------------------------------------------------------------------
def test_report_prometheus_queries_come_from_the_builders() -> None:
    q = report_prometheus.queries("1h")
    assert q["hit_rate"] == hit_ratio(BY_TIER, (), "1h")
    assert q["cache_effectiveness"] == served_ratio((), "1h")
    assert q["mean_lookup_latency"] == mean(LKP, (), (), "1h")
    assert q["cost_per_day"] == cost(BY_TIER, (), "1h")
    assert q["mean_latency"] == mean(ACC, BY_TIER, (), "1h")
    assert q["p95_latency"] == quantile(0.95, ACC, BY_TIER, (), "1h")
    assert q["p95_lookup_latency"] == quantile(0.95, LKP, (), (), "1h")
    for name in ("hit_rate", "cache_effectiveness", "mean_lookup_latency"):
        assert "> 0)" in q[name], name  # zero guard: no NaN without traffic
    prometheus_names = {i.prometheus for i in names.INSTRUMENTS}
    for name, expr in q.items():
        assert any(n in expr for n in prometheus_names), name


# -- targets -------------------------------------------------------------------------------------
def test_targets_have_one_value_everywhere(telemetry: Any) -> None:
    by_name = {t.name: t for t in targets.TARGETS}
    assert {t.name: (t.op, t.value) for t in targets.TARGETS} == {
        "cache_effectiveness": (">", 0.70),
        "mean_lookup_latency_ms": ("<", 50.0),
        "l1_hit_rate": (">", 0.40),
    }
    # rules file: one constant series per target, in Prometheus units
    series = {r["record"]: r["expr"] for r in rule_list() if "target:" in r.get("record", "")}
    assert series == {t.record: f"vector({t.prometheus_value})" for t in targets.TARGETS}
    assert series["tiertrace:target:lookup_latency_seconds_mean"] == "vector(0.05)"
    # dashboards: threshold steps
    board = json.loads((ASSETS / "grafana/dashboards/memory-tiers.json").read_text("utf-8"))
    steps = {
        p["title"]: {s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]}
        for p in board["panels"]
    }
    assert targets.CACHE_EFFECTIVENESS.prometheus_value in steps["Cache effectiveness"]
    assert targets.CACHE_EFFECTIVENESS.prometheus_value in steps["Cache effectiveness over time"]
    assert targets.L1_HIT_RATE.prometheus_value in steps["Hit rate per tier"]
    assert targets.LOOKUP_LATENCY.prometheus_value in steps["Lookup latency"]
    # init() defaults and stats()
    defaults = Settings()
    for t in targets.TARGETS:
        assert getattr(defaults, t.setting) == t.value, t.setting
    rows = tiertrace.stats()["targets"]
    assert [(row["name"], row["op"], row["target"]) for row in rows] == [
        (t.name, t.op, t.value) for t in targets.TARGETS
    ]
    # the report: defaults, labels, and what it evaluates from a snapshot
    assert {t.name: (t.op, t.value) for t in targets.TARGETS} == report.DEFAULT_TARGETS
    assert {t.name: t.label for t in targets.TARGETS} == report.TARGET_LABELS
    rendered = report.from_snapshot(json.loads(json.dumps(tiertrace.stats())))
    assert [(t["name"], t["op"], t["target"]) for t in rendered["targets"]] == [
        (n, t.op, t.value) for n, t in by_name.items()
    ]


def test_a_changed_target_reaches_stats(make_telemetry: Any) -> None:
    make_telemetry(target_l1_hit_rate=0.9)
    rows = {row["name"]: row for row in tiertrace.stats()["targets"]}
    assert rows[targets.L1_HIT_RATE.name]["target"] == 0.9
    assert rows[targets.CACHE_EFFECTIVENESS.name]["target"] == targets.CACHE_EFFECTIVENESS.value


# -- layering ------------------------------------------------------------------------------------
def test_import_tiertrace_loads_no_build_time_code() -> None:
    code = (
        "import sys, tiertrace; prefixes = ('tools', 'tiertrace._contract'); "
        "print('\\n'.join(m for m in sys.modules if m.startswith(prefixes)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(done.stdout.split())
    assert not any(m == "tools" or m.startswith("tools.") for m in loaded), loaded
    assert loaded <= {
        "tiertrace._contract",
        "tiertrace._contract.names",
        "tiertrace._contract.promql",
        "tiertrace._contract.targets",
    }, loaded
    assert not (SRC / "_contract" / "dashboards.py").exists()
    assert not (SRC / "_contract" / "rules.py").exists()


def test_contract_imports_nothing_else_of_tiertrace() -> None:
    for path in (SRC / "_contract").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module
            elif isinstance(node, ast.Import):
                module = node.names[0].name
            else:
                continue
            if module.startswith("tiertrace"):
                assert module.startswith("tiertrace._contract"), (path.name, module)


def test_runtime_hard_codes_no_repository_path() -> None:
    for path in SRC.rglob("*.py"):
        text = path.read_text("utf-8")
        assert ".parents[" not in text, path
        assert "parent.parent" not in text, path


def test_assets_are_package_data_and_generated() -> None:
    assert ASSETS == SRC / "assets"
    assert generate.ASSETS.resolve() == ASSETS.resolve()
    assert RULES == ASSETS / "prometheus" / "rules" / "tiertrace.rules.yml"
    assert generate.stale(ASSETS) == []
    compose = yaml.safe_load((ASSETS / "docker-compose.yml").read_text("utf-8"))
    assert "./prometheus:/etc/prometheus:ro" in compose["services"]["prometheus"]["volumes"]
