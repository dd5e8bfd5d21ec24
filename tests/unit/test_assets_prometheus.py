"""The shipped Prometheus side of the stack is valid and safe by default.

Checks without Docker: promtool validates the Prometheus config, lints the rules and runs
their unit tests; every rule is unit tested and every alert is complete; the compose file and
collector config are structurally sound and safe by default; ``write_assets`` copies every
file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jsonschema
import yaml

from support.assets import ASSETS, RULES, load, rule_list
from support.tools import find, requires
from tiertrace._cli.assets import ASSET_FILES, write_assets

RULE_TESTS = sorted((ASSETS / "prometheus" / "tests").glob("*.yml"))
PROMTOOL = find("promtool")
needs_promtool = requires("promtool")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=ASSETS, capture_output=True, text=True, timeout=120
    )


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
                assert (ASSETS / source).exists(), (name, volume)
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


def test_write_assets_copies_every_asset(tmp_path: Path) -> None:
    on_disk = {"docker-compose.yml", "otel-collector.yaml"} | {
        str(p.relative_to(ASSETS))
        for folder in ("prometheus", "grafana")
        for p in (ASSETS / folder).rglob("*")
        if p.is_file()
    }
    assert set(ASSET_FILES) == on_disk
    written = write_assets(tmp_path / "stack")
    assert written == [tmp_path / "stack" / f for f in ASSET_FILES]
    for relative, path in zip(ASSET_FILES, written, strict=True):
        assert path.read_bytes() == (ASSETS / relative).read_bytes(), relative
