"""The shipped stack links metrics to traces, and the dashboards have what Grafana users expect.

Checks without Docker or Grafana, on the committed files:

* exemplars end to end in the assets: the collector's Prometheus exporter serves OpenMetrics
  (which carries exemplars), the compose Prometheus stores them, and the provisioned Prometheus
  data source sends an exemplar's ``trace_id`` to the provisioned Jaeger;
* both dashboards have the ``instance`` variable and filter every query by it, the built-in
  "Annotations & Alerts", a 0-1 axis on every ratio time series, exemplars on the latency
  panels, range-aware latency bars, and the top pre-cache candidates linked to Jaeger.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from support.assets import ASSETS, load

BOARDS = ("memory-tiers.json", "tier-operations.json")


def board(name: str) -> dict[str, Any]:
    return json.loads((ASSETS / "grafana" / "dashboards" / name).read_text("utf-8"))


def panel(name: str, title: str) -> dict[str, Any]:
    [found] = [p for p in board(name)["panels"] if p["title"] == title]
    return found


def test_collector_serves_exemplars_to_prometheus_in_openmetrics() -> None:
    config = load("otel-collector.yaml")
    exporter = config["exporters"]["prometheus"]
    assert exporter["enable_open_metrics"] is True
    assert "prometheus" in config["service"]["pipelines"]["metrics"]["exporters"]
    # the same collector receives the spans the exemplars point at, and sends them to Jaeger
    assert "otlp/jaeger" in config["service"]["pipelines"]["traces"]["exporters"]


def test_compose_prometheus_stores_exemplars() -> None:
    command = load("docker-compose.yml")["services"]["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in command


def test_prometheus_datasource_sends_exemplar_trace_ids_to_the_provisioned_jaeger() -> None:
    sources = {s["uid"]: s for s in load("grafana/provisioning/datasources/tiertrace.yaml")[
        "datasources"]}  # fmt: skip
    jaeger = sources["tiertrace-jaeger"]
    assert jaeger["type"] == "jaeger"
    destinations = sources["tiertrace-prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destinations == [{"name": "trace_id", "datasourceUid": jaeger["uid"]}]


def test_every_query_filters_by_the_instance_variable() -> None:
    for name in BOARDS:
        variables = {v["name"]: v for v in board(name)["templating"]["list"]}
        instance = variables["instance"]
        assert instance["type"] == "query" and instance["multi"] and instance["includeAll"]
        assert instance["definition"] == (
            'label_values(tiertrace_access_duration_seconds_count{job=~"$job"}, instance)'
        )
        names = list(variables)
        assert names.index("job") < names.index("instance") < names.index("tier"), names
        assert 'instance=~"$instance"' in variables["tier"]["definition"]
        for p in board(name)["panels"]:
            for target in p["targets"]:
                selectors = re.findall(r"\b[a-z_:]+\{([^}]*)\}", target["expr"])
                assert selectors, (name, p["title"])
                for matchers in selectors:
                    assert 'instance=~"$instance"' in matchers, (name, p["title"], matchers)
                    assert 'job=~"$job"' in matchers, (name, p["title"], matchers)


def test_dashboards_show_annotations_and_alerts() -> None:
    for name in BOARDS:
        [builtin] = board(name)["annotations"]["list"]
        assert builtin["builtIn"] == 1 and builtin["enable"] is True
        assert builtin["name"] == "Annotations & Alerts" and builtin["type"] == "dashboard"
        assert builtin["datasource"] == {"type": "grafana", "uid": "-- Grafana --"}


def test_every_ratio_time_series_has_a_zero_to_one_axis() -> None:
    ratios = 0
    for name in BOARDS:
        for p in board(name)["panels"]:
            defaults = p["fieldConfig"]["defaults"]
            if p["type"] == "timeseries" and defaults["unit"] == "percentunit":
                assert (defaults["min"], defaults["max"]) == (0, 1), (name, p["title"])
                ratios += 1
    assert ratios == 3  # hit rate per tier, cache effectiveness, hit rate by operation


def test_latency_panels_have_exemplars_on() -> None:
    with_exemplars = {
        (name, p["title"])
        for name in BOARDS
        for p in board(name)["panels"]
        if any(t.get("exemplar") for t in p["targets"])
    }
    assert with_exemplars == {
        ("memory-tiers.json", "Lookup latency"),
        ("memory-tiers.json", "Lookup latency distribution"),
        ("tier-operations.json", "Latency percentiles by operation"),
    }
    for name, title in with_exemplars:
        for target in panel(name, title)["targets"]:
            # exactly the queries over a histogram's buckets, on range queries
            on_buckets = "_duration_seconds_bucket" in target["expr"]
            assert bool(target.get("exemplar")) == on_buckets, (title, target["expr"])
            assert target["range"] is True
    heatmap = panel("memory-tiers.json", "Lookup latency distribution")
    assert heatmap["type"] == "heatmap" and heatmap["targets"][0]["format"] == "heatmap"
    assert heatmap["targets"][0]["expr"].startswith(
        "sum by (le) (rate(tiertrace_lookup_duration_seconds_bucket{"
    )


def test_latency_bars_follow_the_dashboard_time_range() -> None:
    bars = panel("memory-tiers.json", "Access latency per tier")
    assert len(bars["targets"]) == 4
    for target in bars["targets"]:
        assert target["instant"] is True
        assert set(re.findall(r"\[([^\]]*)\]", target["expr"])) == {"$__range"}
    table = panel("tier-operations.json", "Operations")
    for target in table["targets"]:
        assert set(re.findall(r"\[([^\]]*)\]", target["expr"])) == {"$__range"}


def test_top_precache_candidates_link_each_row_to_its_traces_in_jaeger() -> None:
    top = panel("memory-tiers.json", "Top pre-cache candidates")
    assert top["type"] == "table"
    [target] = top["targets"]
    assert target["instant"] is True and target["format"] == "table"
    assert target["expr"] == (
        "topk(10, sum by (job, tiertrace_pattern, tiertrace_tier) "
        '(tiertrace_advisor_candidate_latency_savings_seconds{job=~"$job", '
        'instance=~"$instance", tiertrace_tier=~"$tier"}))'
    )
    [link] = top["fieldConfig"]["defaults"]["links"]
    assert "${__data.fields.tiertrace_pattern}" in link["title"]
    url = urllib.parse.urlsplit(link["url"])
    assert url.path == "/explore"
    params = dict(urllib.parse.parse_qsl(url.query))
    [pane] = json.loads(params["panes"]).values()
    jaeger = load("grafana/provisioning/datasources/tiertrace.yaml")["datasources"][1]
    assert pane["datasource"] == jaeger["uid"] == "tiertrace-jaeger"
    [query] = pane["queries"]
    assert query["datasource"] == {"type": "jaeger", "uid": "tiertrace-jaeger"}
    assert query["queryType"] == "search"
    assert query["service"] == "${__data.fields.job:percentencode}"
    assert query["tags"] == "tiertrace.served_by=${__data.fields.tiertrace_tier:percentencode}"
    assert pane["range"] == {"from": "${__from}", "to": "${__to}"}
    # the columns the link reads are kept under their label names
    [organize] = top["transformations"]
    assert organize["options"]["renameByName"] == {"Value": "Latency saved per day"}
