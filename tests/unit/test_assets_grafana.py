"""The shipped Grafana dashboards are valid, consistent and regenerated from one source.

Checks without Grafana: the committed dashboards and rules equal what
`tools.generate` produces; every dashboard and rule expression parses and
uses only the metric and label names of the telemetry contract; targets live in one place;
the dashboards pass a lint and have the promised panels; the Grafana provisioning is wired.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser

from support.assets import ASSETS, RULES, load, rule_list
from tools import dashboards as _dashboards
from tools import generate as _generate
from tools import rules as _rules

HISTOGRAMS = ("tiertrace_access_duration_seconds", "tiertrace_lookup_duration_seconds")
CONTRACT_METRICS = {f"{h}_{s}" for h in HISTOGRAMS for s in ("bucket", "sum", "count")} | {
    "tiertrace_cost_usd_total",
    "tiertrace_self_errors_total",
    "tiertrace_advisor_candidate_accesses",
    "tiertrace_advisor_candidate_latency_savings_seconds",
    "tiertrace_advisor_candidate_cost_savings_usd",
    "tiertrace_whatif_cache_effectiveness",
    "tiertrace_whatif_cost_usd",
}
CONTRACT_LABELS = {
    "tiertrace_tier", "tiertrace_tier_level", "tiertrace_hit", "db_system_name",
    "db_operation_name", "error_type", "tiertrace_served_by", "tiertrace_served_by_level",
    "tiertrace_cache_hit", "tiertrace_query_type", "tiertrace_pattern", "tiertrace_component",
    "tiertrace_ttl", "job", "instance", "le",
}  # fmt: skip
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def dashboards() -> dict[str, Any]:
    folder = ASSETS / "grafana" / "dashboards"
    return {p.name: json.loads(p.read_text("utf-8")) for p in sorted(folder.glob("*.json"))}


def panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, board in dashboards().items():
        for panel in board["panels"]:
            yield f"{name}: {panel['title']}", panel


def concrete(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def names_in(expr: str) -> tuple[set[str], set[str]]:
    """Metric names and label names an expression uses (selectors, by/on/group clauses)."""
    metrics: set[str] = set()
    labels: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            metrics.add(node.name or "")
            labels.update(m.name for m in node.matchers.matchers)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier:
            labels.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier:
            if node.modifier.matching:
                labels.update(node.modifier.matching.labels)
            labels.update(node.modifier.group_labels or [])

    promql_parser.walk(promql_parser.parse(concrete(expr)), pre_visit=visit)
    return metrics, labels


def test_committed_dashboards_and_rules_equal_generated(tmp_path: Path) -> None:
    for name, text in _dashboards.render().items():
        assert (ASSETS / "grafana" / "dashboards" / name).read_text("utf-8") == text, name
    assert RULES.read_text("utf-8") == _rules.render_rules()
    assert set(_generate.render()) == {
        "grafana/dashboards/memory-tiers.json", "grafana/dashboards/tier-operations.json",
        "prometheus/rules/tiertrace.rules.yml"}  # fmt: skip
    assert _generate.ASSETS == ASSETS
    assert _generate.stale(ASSETS) == []
    assert _generate.main(["--check"]) == 0
    out = ["--out", str(tmp_path / "stack")]
    assert _generate.main(["--check", *out]) == 1
    assert _generate.main(["--write", *out]) == 0
    assert _generate.main(["--check", *out]) == 0
    (tmp_path / "stack" / "grafana" / "dashboards" / "memory-tiers.json").write_text("{}")
    assert _generate.stale(tmp_path / "stack") == [
        tmp_path / "stack" / "grafana" / "dashboards" / "memory-tiers.json"]  # fmt: skip
    assert _generate.main(["--check", *out]) == 1


def test_targets_live_in_one_place() -> None:
    targets = {r["record"]: r["expr"] for r in rule_list() if "target:" in r.get("record", "")}
    assert targets == {f"tiertrace:target:{k}": f"vector({v})" for k, v in _rules.TARGETS.items()}
    assert _rules.TARGETS == {
        "cache_effectiveness": 0.70, "lookup_latency_seconds_mean": 0.05, "l1_hit_ratio": 0.40,
    }  # fmt: skip
    steps = {
        title: {s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]}
        for title, p in panels()
    }
    for key, title in (
        ("cache_effectiveness", "Cache effectiveness"),
        ("cache_effectiveness", "Cache effectiveness over time"),
        ("l1_hit_ratio", "Hit rate per tier"),
        ("lookup_latency_seconds_mean", "Lookup latency"),
    ):
        assert _rules.TARGETS[key] in steps[f"memory-tiers.json: {title}"], title
    alert_exprs = " ".join(r["expr"] for r in rule_list() if "alert" in r)
    for name in targets:
        assert name in alert_exprs
    assert not re.search(r"[<>]\s*0\.\d", alert_exprs), "alerts compare with target series"


def test_expressions_use_only_contract_names() -> None:
    recorded = {r["record"] for r in rule_list() if "record" in r}
    exprs = [(f"rule {r.get('record') or r['alert']}", r["expr"]) for r in rule_list()]
    exprs += [(title, t["expr"]) for title, p in panels() for t in p["targets"]]
    assert len(exprs) > 40
    for where, expr in exprs:
        metrics, labels = names_in(expr)
        assert metrics <= CONTRACT_METRICS | recorded, (where, metrics)
        assert metrics or expr.startswith("vector("), where
        assert labels <= CONTRACT_LABELS, (where, labels - CONTRACT_LABELS)
    used = set().union(*(names_in(e)[0] for _, e in exprs))
    assert used >= CONTRACT_METRICS, CONTRACT_METRICS - used


def test_dashboards_pass_lint() -> None:
    boards = dashboards()
    assert {b["uid"] for b in boards.values()} == {
        "tiertrace-memory-tiers", "tiertrace-tier-operations"}  # fmt: skip
    for name, board in boards.items():
        assert board["schemaVersion"] >= 39 and "id" not in board
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["tier"]["query"].startswith("label_values(tiertrace_access_duration")
        assert variables["tier"]["query"].endswith(", tiertrace_tier)")
        assert "job" in variables
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            where = f"{name}: {panel['title']}"
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, where
            assert panel["fieldConfig"]["defaults"].get("unit"), where
            assert panel["datasource"]["uid"] == "${datasource}", where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", where
                ranges = re.findall(r"\[([^\]]*)\]", target["expr"])
                calls = re.findall(r"\b(?:rate|increase|irate|delta)\(", target["expr"])
                allowed = {"$__rate_interval", "$__range"}
                assert set(ranges) <= allowed and len(ranges) >= len(calls), where


def test_memory_tiers_dashboard_has_the_promised_panels() -> None:
    board = dashboards()["memory-tiers.json"]
    kinds = [p["type"] for p in board["panels"]]
    for kind in ("piechart", "gauge", "barchart", "bargauge", "table", "timeseries"):
        assert kind in kinds
    assert kinds.count("stat") == 4
    text = json.dumps(board)
    for needle in ("tiertrace_served_by", "tiertrace_advisor_candidate_cost_savings_usd",
                   "tiertrace_self_errors_total", "error_type", "histogram_quantile(0.99",
                   "* 2592000", "* 86400"):  # fmt: skip
        assert needle in text, needle


def test_grafana_provisioning() -> None:
    sources = load("grafana/provisioning/datasources/tiertrace.yaml")
    assert sources["apiVersion"] == 1
    by_uid = {s["uid"]: s for s in sources["datasources"]}
    assert by_uid["tiertrace-prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["tiertrace-jaeger"]["type"] == "jaeger"
    providers = load("grafana/provisioning/dashboards/tiertrace.yaml")
    assert providers["apiVersion"] == 1
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    mounts = load("docker-compose.yml")["services"]["grafana"]["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounts
