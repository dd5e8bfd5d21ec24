"""The shipped observability assets are valid, consistent and regenerated from one source.

Checks without Docker or Grafana: promtool validates the Prometheus config, lints the rules
and runs their unit tests; every dashboard and rule expression parses and uses only the
metric and label names of the telemetry contract; the dashboards pass a lint; the compose
file, collector config and Grafana provisioning are structurally sound and safe by default;
``write_assets`` copies every file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import pytest
import yaml

from tiertrace import _dashboards, _rules
from tiertrace._assets import ASSET_FILES, write_assets

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / _rules.RULES_PATH
RULE_TESTS = sorted((ROOT / "prometheus" / "tests").glob("*.yml"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not found on PATH (Debian: apt-get install prometheus)"
)

HISTOGRAMS = ("tiertrace_access_duration_seconds", "tiertrace_lookup_duration_seconds")
CONTRACT_METRICS = {f"{h}_{s}" for h in HISTOGRAMS for s in ("bucket", "sum", "count")} | {
    "tiertrace_cost_usd_total",
    "tiertrace_self_errors_total",
    "tiertrace_advisor_candidate_accesses",
    "tiertrace_advisor_candidate_latency_savings_seconds",
    "tiertrace_advisor_candidate_cost_savings_usd",
}
CONTRACT_LABELS = {
    "tiertrace_tier", "tiertrace_tier_level", "tiertrace_hit", "db_system_name",
    "db_operation_name", "error_type", "tiertrace_served_by", "tiertrace_served_by_level",
    "tiertrace_cache_hit", "tiertrace_query_type", "tiertrace_pattern", "tiertrace_component",
    "job", "instance", "le",
}  # fmt: skip
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def load(relative: str) -> Any:
    return yaml.safe_load((ROOT / relative).read_text("utf-8"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def rule_list() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def dashboards() -> dict[str, Any]:
    folder = ROOT / "grafana" / "dashboards"
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


@needs_promtool
def test_prometheus_config_and_rules_pass_promtool_check() -> None:
    result = promtool("check", "config", "--lint=all", "--lint-fatal", "prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_unit_tested_and_alerts_are_complete() -> None:
    tests = [t for f in RULE_TESTS for t in yaml.safe_load(f.read_text())["tests"]]
    exprs = " ".join(c["expr"] for t in tests for c in t.get("promql_expr_test", []))
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    alerts = {r["alert"]: r for r in rule_list() if "alert" in r}
    assert set(alerts) == {
        "TiertraceCacheEffectivenessLow", "TiertraceLookupLatencyHigh", "TiertraceL1HitRateLow",
        "TiertraceTelemetryAbsent", "TiertraceSelfErrors",
    }  # fmt: skip
    for rule in rule_list():
        if "record" in rule:
            assert re.search(rf"{re.escape(rule['record'])}\b", exprs), rule["record"]
            continue
        outcomes = {bool(c["exp_alerts"]) for c in cases if c["alertname"] == rule["alert"]}
        assert outcomes == {True, False}, f"{rule['alert']} needs a firing and a quiet case"
        assert re.fullmatch(r"\d+[smh]", rule["for"]) and rule["labels"]["severity"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    absent = alerts["TiertraceTelemetryAbsent"]
    assert absent["expr"] == "absent(tiertrace_access_duration_seconds_count)"
    assert absent["for"] == "10m"


def test_committed_dashboards_and_rules_equal_generated(tmp_path: Path) -> None:
    for name, text in _dashboards.render().items():
        assert (ROOT / "grafana" / "dashboards" / name).read_text("utf-8") == text, name
    assert RULES.read_text("utf-8") == _rules.render_rules()
    assert (
        _dashboards.main(["--check", str(ROOT / "grafana/dashboards"), "--rules", str(RULES)]) == 0
    )
    args = [str(tmp_path / "dash"), "--rules", str(tmp_path / "rules.yml")]
    assert _dashboards.main(["--check", *args]) == 1
    assert _dashboards.main(["--write", *args]) == 0
    assert _dashboards.main(["--check", *args]) == 0
    (tmp_path / "dash" / "memory-tiers.json").write_text("{}")
    assert _dashboards.main(["--check", *args]) == 1


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
                assert set(ranges) <= {"$__rate_interval"} and len(ranges) >= len(calls), where


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


def test_compose_is_pinned_local_and_read_only() -> None:
    compose = load("docker-compose.yml")
    schema = {
        "type": "object", "required": ["services"],
        "properties": {"name": {"type": "string"}, "services": {
            "type": "object", "additionalProperties": {
                "type": "object", "required": ["image"],
                "properties": {
                    "image": {"type": "string", "pattern": r"^[\w./-]+:[\w.-]+$"},
                    "ports": {"type": "array", "items": {"type": "string"}},
                    "volumes": {"type": "array", "items": {"type": "string"}},
                    "environment": {"type": "object", "additionalProperties": {"type": "string"}},
                    "command": {"type": ["string", "array"]},
                    "depends_on": {"type": ["array", "object"]},
                }}}},
    }  # fmt: skip
    jsonschema.validate(compose, schema)
    services = compose["services"]
    expected = {"redis", "postgres", "chroma", "otel-collector", "prometheus", "grafana", "jaeger"}
    assert set(services) == expected | {"demo"}
    for name, service in services.items():
        assert not service["image"].endswith(":latest"), name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert volume.endswith(":ro"), (name, volume)
                assert (ROOT / source).exists(), (name, volume)
    grafana = services["grafana"]["environment"]
    password = "${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD}"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == password
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert services["demo"]["image"].startswith("python:3.11")
    command = " ".join(services["demo"]["command"])
    for flag in ("--otlp http://otel-collector:4318", "--redis-url redis://redis:6379/0",
                 "--postgres-dsn postgresql://", "--chroma-url http://chroma:8000",
                 "--duration 0"):  # fmt: skip
        assert flag in command
    assert services["demo"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]


def test_collector_config_is_wired() -> None:
    config = load("otel-collector.yaml")
    service = config["service"]
    assert set(service["pipelines"]) == {"metrics", "traces", "logs"}
    for pipeline in service["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline[kind]:
                assert component in config[kind], component
    assert set(service.get("extensions", [])) <= set(config.get("extensions", {}))
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert service["pipelines"]["metrics"]["exporters"] == ["prometheus"]
    assert service["pipelines"]["traces"]["exporters"] == ["otlp/jaeger"]
    assert service["pipelines"]["logs"]["exporters"] == ["debug"]
    prom = config["exporters"]["prometheus"]
    assert "namespace" not in prom and prom["resource_to_telemetry_conversion"]["enabled"] is False
    jaeger = config["exporters"]["otlp/jaeger"]
    assert jaeger["endpoint"] == "jaeger:4317" and jaeger["tls"]["insecure"] is True
    scrape = load("prometheus/prometheus.yml")["scrape_configs"]
    job = next(j for j in scrape if j["job_name"] == "otel-collector")
    assert job["honor_labels"] is True
    [target] = job["static_configs"][0]["targets"]
    assert target.split(":")[1] == prom["endpoint"].split(":")[1]
    image = load("docker-compose.yml")["services"]["otel-collector"]["image"]
    assert image.startswith("otel/opentelemetry-collector-contrib:0.")


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


def test_write_assets_copies_every_asset(tmp_path: Path) -> None:
    on_disk = {"docker-compose.yml", "otel-collector.yaml"} | {
        str(p.relative_to(ROOT))
        for folder in ("prometheus", "grafana")
        for p in (ROOT / folder).rglob("*")
        if p.is_file()
    }
    assert set(ASSET_FILES) == on_disk
    written = write_assets(tmp_path / "stack")
    assert written == [tmp_path / "stack" / f for f in ASSET_FILES]
    for relative, path in zip(ASSET_FILES, written, strict=True):
        assert path.read_bytes() == (ROOT / relative).read_bytes(), relative
