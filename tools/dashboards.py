"""The Grafana dashboards of tiertrace, generated as plain dicts.

Two dashboards are provisioned by the compose stack (``grafana/dashboards/*.json``):

* **Memory tiers** (uid ``tiertrace-memory-tiers``): which tier serves lookups, latency per
  tier (mean, p50, p95, p99 over the chosen time range), cache effectiveness against its
  target, per-tier hit rate, latency, throughput and cost per day, daily and monthly cost
  projections, hit rate and lookup latency over time against their targets, the lookup latency
  heatmap with exemplars, the top 10 pre-cache candidates (each row links to the traces in
  Jaeger), the advisor's pre-cache suggestions, errors, and the TTL what-if (predicted cache
  effectiveness and cost per day per L1 TTL).
* **Tier operations** (uid ``tiertrace-tier-operations``): per tier and
  ``db.operation.name``: throughput, latency percentiles (with exemplars), hit rate and errors
  by ``error.type``, and a summary table over the time range.

What a Grafana user expects, and where it comes from here:

* Variables ``datasource`` (any Prometheus), ``job``, ``instance`` and ``tier`` (multi-value,
  with All); every query filters ``job=~"$job", instance=~"$instance"`` and, where a tier label
  exists, ``tiertrace_tier=~"$tier"``. Scraped through the collector, ``instance`` is the
  process's ``service.instance.id`` (the OpenTelemetry SDK sets a random one per process);
  scraped directly (``exporter="prometheus"``), it is the scrape target ``host:port``.
* The built-in "Annotations & Alerts" annotation, so alert state changes show on every panel.
* Every ratio time series (``percentunit``) has a fixed 0-1 axis (min 0, max 1).
* Time series use ``$__rate_interval``; the latency bar chart and the operations table are
  instant queries over ``[$__range]``, so they follow the time picker.
* Exemplars: the targets of the latency panels built on ``tiertrace_*_duration_seconds_bucket``
  (p95 lookup latency, the lookup latency heatmap, latency percentiles by operation) have
  ``"exemplar": true``. With exemplar storage on in Prometheus and the Prometheus data source's
  ``exemplarTraceIdDestinations`` pointing at Jaeger (both in the shipped stack), a dot on
  those panels opens its trace.
* The **Top pre-cache candidates** table is ``topk(10, sum by (job, tiertrace_pattern,
  tiertrace_tier) (tiertrace_advisor_candidate_latency_savings_seconds{...}))``.
  Each row links to Grafana Explore on the provisioned Jaeger data source (uid
  ``tiertrace-jaeger``): a trace search for service ``job`` with the tag
  ``tiertrace.served_by=<tier of the row>`` over the dashboard's time range, i.e. the lookups
  that tier served, the slow reads a pre-cache would absorb. The pattern itself is not a span
  attribute (a fingerprint or key template, kept off spans by design), so the search is per
  job and tier; the pattern is in the link's title. With the collector in between, ``job`` is
  the ``service.name`` (``service.namespace/service.name`` when a namespace is set), which is
  what Jaeger calls the service.

The queries are the builders of `tiertrace._contract.promql` and the thresholds the targets of
`tiertrace._contract.targets`, from which `tools.rules` also builds the Prometheus rules, so a
panel, its recording rule and its alert share one definition. The JSON files are generated and
committed in ``src/tiertrace/assets/grafana/dashboards``; regenerate them after changing a
query or a target (from the repository root)::

    python -m tools.generate --write
    python -m tools.generate --check   # exit 1 when a committed file is stale

Import a dashboard into another Grafana by uploading its JSON file and choosing your
Prometheus data source in the ``datasource`` variable.

Why plain dicts and not Grafana's Foundation SDK (PyPI ``grafana-foundation-sdk``): the SDK
was read (its builders cover every panel used here, and ``prometheus.Dataquery`` has
``exemplar()``), and not adopted, because

* its releases are one package per Grafana version told apart by a PEP 440 epoch
  (``1769699520!11.4.0`` is the build for Grafana 11.4, the version the compose file pins),
  and the highest epoch is not the newest Grafana: a plain ``pip install
  grafana-foundation-sdk`` resolves to the Grafana **10.1** types. A contributor who installs
  it without the exact pin gets different JSON, and ``tools.generate --check`` fails;
* it is marked alpha and republished for every Grafana version every few weeks, so the
  committed JSON would change with the SDK rather than with our contract;
* the parts that matter here — the PromQL, the targets, the variables' selectors, the layout
  rule — are ours either way and come from `tiertrace._contract`; the SDK would replace about
  sixty lines of dict helpers, and the live tests (``tests/test_live_prometheus.py``) read the
  same dicts the JSON is written from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from tiertrace._contract.names import (
    ADVISOR_GAUGES,
    ADVISOR_LATENCY_SAVINGS,
    COMPONENT,
    ERROR_TYPE,
    PATTERN,
    SELF_ERRORS,
    SERVED_BY,
    TTL,
    WHATIF_GAUGES,
    label,
)
from tiertrace._contract.promql import (
    ACC,
    BY_TIER,
    LKP,
    MONTH_DAYS,
    cost,
    hit_ratio,
    mean,
    quantile,
    served_ratio,
    sum_rate,
)
from tiertrace._contract.targets import CACHE_EFFECTIVENESS, L1_HIT_RATE, LOOKUP_LATENCY, Target

Json = dict[str, Any]
TIER, ERR = BY_TIER, label(ERROR_TYPE)

DS = {"type": "prometheus", "uid": "${datasource}"}
RI, RANGE = "$__rate_interval", "$__range"
JOB, INST, TIER_SEL = 'job=~"$job"', 'instance=~"$instance"', 'tiertrace_tier=~"$tier"'
RATIO = {"min": 0, "max": 1}  # the axis of every percentunit time series
JAEGER = {"type": "jaeger", "uid": "tiertrace-jaeger"}  # provisioned, see grafana/provisioning
ANNOTATIONS = {
    "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
    "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
    "type": "dashboard",
    "target": {"limit": 100, "matchAny": False, "tags": [], "type": "dashboard"},
}  # fmt: skip
LEGEND = {"displayMode": "list", "placement": "bottom", "showLegend": True}
TOOLTIP = {"mode": "multi", "sort": "desc"}
Query = tuple[str, str]  # (expression, legend)


def _target(expr: str, legend: str, ref: str, table: bool, exemplar: bool, fmt: str) -> Json:
    kind: Json = {"instant": True, "range": False, "format": "table"}
    if not table:
        kind = {"instant": False, "range": True, "format": fmt}
    if exemplar:  # Grafana draws the exemplars of the _bucket series as points to click
        kind["exemplar"] = True
    return {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend, **kind}


def _panel(kind: str, title: str, desc: str, unit: str, size: tuple[int, int],
           queries: Sequence[Query], *, table: bool = False, overrides: Sequence[Json] = (),
           steps: Sequence[tuple[float | None, str]] = ((None, "green"),),
           defaults: Json | None = None, exemplar: bool = False, fmt: str = "time_series",
           **extra: Any) -> Json:  # fmt: skip
    thresholds = {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}
    field = {"unit": unit, "thresholds": thresholds, **(defaults or {})}
    targets = [_target(e, legend, chr(65 + i), table, exemplar and "_bucket" in e, fmt)
               for i, (e, legend) in enumerate(queries)]  # fmt: skip
    return {"type": kind, "title": title, "description": desc, "datasource": DS, "_size": size,
            "fieldConfig": {"defaults": field, "overrides": list(overrides)},
            "targets": targets, **extra}  # fmt: skip


def _reduce(calc: str, **options: Any) -> Json:
    return {"reduceOptions": {"calcs": [calc], "fields": "", "values": False}, **options}


def _table(title: str, desc: str, size: tuple[int, int], queries: Sequence[Query],
           columns: Sequence[tuple[str, str]], sort: str) -> Json:  # fmt: skip
    """Instant queries merged into one table; ``columns`` are (name, unit) per query."""
    overrides = [
        {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": u}]}
        for name, u in columns
    ]
    return _panel("table", title, desc, columns[0][1], size, queries, table=True,
                  overrides=overrides, options={"showHeader": True, "sortBy": [
                      {"displayName": sort, "desc": True}]},
                  transformations=_merge([name for name, _ in columns]))  # fmt: skip


def _series(title: str, desc: str, unit: str, size: tuple[int, int], queries: Sequence[Query],
            target: Target | None = None, exemplar: bool = False) -> Json:  # fmt: skip
    """A time series; a ``target`` draws a dashed threshold line at its value. Ratios
    (``percentunit``) get a fixed 0-1 axis; ``exemplar`` turns exemplars on for the queries
    of a ``_bucket`` series (the histogram_quantile ones)."""
    steps: list[tuple[float | None, str]] = [(None, "green")]
    if target:
        good, bad = ("red", "green") if target.op == ">" else ("green", "red")
        steps = [(None, good), (target.prometheus_value, bad)]
    defaults: Json = {"custom": {"thresholdsStyle": {"mode": "dashed" if target else "off"}}}
    if unit == "percentunit":
        defaults |= RATIO
    options = {"legend": LEGEND, "tooltip": TOOLTIP}
    return _panel("timeseries", title, desc, unit, size, queries, steps=steps,
                  defaults=defaults, options=options, exemplar=exemplar)  # fmt: skip


def _stat(title: str, desc: str, unit: str, expr: str, calc: str = "lastNotNull") -> Json:
    options = _reduce(calc, colorMode="value", graphMode="area", textMode="value_and_name")
    return _panel("stat", title, desc, unit, (6, 5), [(expr, "{{tiertrace_tier}}")],
                  options=options)  # fmt: skip


def _variables(*extra: tuple[str, str]) -> list[Json]:
    source = {"name": "datasource", "label": "Data source", "type": "datasource",
              "query": "prometheus", "current": {}, "hide": 0, "refresh": 1}  # fmt: skip
    variables: list[Json] = [source]
    for name, query in (
        ("job", f"label_values({ACC}_count, job)"),
        ("instance", f"label_values({ACC}_count{{{JOB}}}, instance)"),
        ("tier", f"label_values({ACC}_count{{{JOB}, {INST}}}, tiertrace_tier)"),
        *extra,
    ):
        variables.append({
            "name": name, "label": name.capitalize(), "type": "query", "datasource": DS,
            "definition": query, "query": query, "refresh": 2, "sort": 1, "multi": True,
            "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        })  # fmt: skip
    return variables


def _dashboard(uid: str, title: str, desc: str, panels: list[Json], variables: list[Json]) -> Json:
    """Number the panels and flow them left to right in rows of 24 columns."""
    x = y = row_h = 0
    placed = []
    for i, panel in enumerate(panels, 1):
        w, h = panel.pop("_size")
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        placed.append({"id": i, "gridPos": {"h": h, "w": w, "x": x, "y": y}, **panel})
        x, row_h = x + w, max(row_h, h)
    link = {"type": "dashboards", "tags": ["tiertrace"], "title": "tiertrace",
            "asDropdown": False, "includeVars": True, "keepTime": True}  # fmt: skip
    return {"uid": uid, "title": title, "description": desc, "tags": ["tiertrace"],
            "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
            "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "timezone": "browser",
            "annotations": {"list": [ANNOTATIONS]}, "templating": {"list": variables},
            "links": [link], "panels": placed}  # fmt: skip


def _heatmap(title: str, desc: str, expr: str) -> Json:
    """A heatmap of a histogram's buckets over time, exemplars on."""
    options = {
        "calculate": False, "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges"},
        "exemplars": {"color": "rgba(255,0,255,0.7)"}, "filterValues": {"le": 1e-9},
        "legend": {"show": True}, "tooltip": {"mode": "single", "yHistogram": True},
        "yAxis": {"axisPlacement": "left", "unit": "s"}, "rowsFrame": {"layout": "le"},
    }  # fmt: skip
    return _panel("heatmap", title, desc, "reqps", (12, 8), [(expr, "{{le}}")],
                  exemplar=True, fmt="heatmap", options=options)  # fmt: skip


def explore_link(datasource: Json, query: Json) -> str:
    """A Grafana Explore URL (``panes`` schema 1) running ``query`` on ``datasource`` over the
    dashboard's time range. Grafana interpolates ``${...}`` in it per table row."""
    pane = {"datasource": datasource["uid"], "queries": [{"refId": "A", "datasource":
            datasource, **query}], "range": {"from": "${__from}", "to": "${__to}"}}  # fmt: skip
    return "/explore?schemaVersion=1&orgId=1&panes=" + json.dumps(
        {"traces": pane}, separators=(",", ":")
    )


def _candidates(sel: Sequence[str]) -> Json:
    """The top 10 pre-cache candidates by latency saved per day, summed over the instances of
    a job; each row links to Jaeger: the lookups of that job served by that tier (the slow
    reads a pre-cache would absorb), over the dashboard's time range."""
    gauge = ADVISOR_LATENCY_SAVINGS.prometheus  # s per day
    by = f"job, {label(PATTERN)}, {TIER[0]}"
    expr = f"topk(10, sum by ({by}) ({gauge}{{{', '.join(sel)}}}))"
    field = "${__data.fields.%s:percentencode}"
    tags = f"{SERVED_BY}={field % TIER[0]}"  # a span attribute of the lookup span
    query = {"queryType": "search", "service": field % "job", "tags": tags, "limit": 20}
    link = {"title": "Traces of the lookups of ${__data.fields.tiertrace_pattern} served by "
            "${__data.fields.tiertrace_tier}", "url": explore_link(JAEGER, query)}  # fmt: skip
    organize = {"excludeByName": {"Time": True},
                # the label columns keep their names: the link reads them per row
                "renameByName": {"Value": "Latency saved per day"},
                "indexByName": {"tiertrace_pattern": 0, "tiertrace_tier": 1, "job": 2,
                                "Value": 3}}  # fmt: skip
    return _panel("table", "Top pre-cache candidates", "The ten access patterns whose "
                  "pre-caching in level 1 would save the most lookup latency per day (summed "
                  "over the instances). Click a row for the traces of the lookups that tier "
                  "served, in Jaeger.", "dtdurations", (24, 8), [(expr, "")], table=True,
                  defaults={"links": [link]},
                  options={"showHeader": True, "sortBy": [
                      {"displayName": "Latency saved per day", "desc": True}]},
                  transformations=[{"id": "organize", "options": organize}])  # fmt: skip


def _merge(names: Sequence[str]) -> list[Json]:
    rename = {f"Value #{chr(65 + i)}": name for i, name in enumerate(names)}
    organize = {"excludeByName": {"Time": True}, "renameByName": rename}
    return [{"id": "merge", "options": {}}, {"id": "organize", "options": organize}]


def memory_tiers() -> Json:
    a, lk = (JOB, INST, TIER_SEL), (JOB, INST)
    stats = _reduce("lastNotNull", showThresholdMarkers=True)
    bars = _reduce("mean", displayMode="basic", orientation="horizontal", showUnfilled=True)
    pie = _reduce("mean", pieType="donut", displayLabels=["percent"])
    pie["legend"] = {**LEGEND, "placement": "right", "values": ["percent"]}
    barchart = {"xField": "tiertrace_tier", "legend": LEGEND, "tooltip": TOOLTIP}
    # over the dashboard's time range ($__range), not the last few minutes
    lat = [(mean(ACC, TIER, a, RANGE), "")]
    lat += [(quantile(q, ACC, TIER, a, RANGE), "") for q in (0.5, 0.95, 0.99)]
    served = sum_rate((label(SERVED_BY),), f"{LKP}_count", lk, RI)
    by_pattern = f"{label(PATTERN)}, {TIER[0]}"
    advisor = [(f"sum by ({by_pattern}) ({m.prometheus}{{{JOB}, {INST}, {TIER_SEL}}})", "")
               for m in ADVISOR_GAUGES]  # fmt: skip
    errors = (f"sum by ({label(COMPONENT)}) "
              f"(increase({SELF_ERRORS.prometheus}{{{JOB}, {INST}}}[{RI}]))")  # fmt: skip
    failed = sum_rate((*TIER, ERR), f"{ACC}_count", a, RI, f'{ERR}!=""')
    daily = [(cost(TIER, a, RI), "{{tiertrace_tier}}"), (cost((), a, RI), "total")]
    monthly = [(cost(TIER, a, RI, MONTH_DAYS), "{{tiertrace_tier}}")]
    monthly.append((cost((), a, RI, MONTH_DAYS), "total"))
    ce, l1, ms = (t.prometheus_value for t in (CACHE_EFFECTIVENESS, L1_HIT_RATE, LOOKUP_LATENCY))
    whatif = [
        (f"max by ({label(TTL)}) ({m.prometheus}{{{JOB}, {INST}}})", "") for m in WHATIF_GAUGES
    ]
    panels = [
        _panel("piechart", "Lookups served by", "Lookups per second by the tier that served "
               "them (none: every tier missed), averaged over the time range.", "ops", (6, 8),
               [(served, "{{tiertrace_served_by}}")], options=pie),
        _panel("gauge", "Cache effectiveness", f"Share of lookups served by level 1. Target: "
               f"at least {ce:.0%}.", "percentunit", (6, 8), [(served_ratio(lk, RI), "L1")],
               steps=[(None, "red"), (ce, "green")], defaults={"min": 0, "max": 1},
               options=stats),
        _panel("barchart", "Access latency per tier", "Mean, p50, p95 and p99 of one access "
               "per tier over the time range.", "s", (12, 8), lat, table=True, options=barchart,
               transformations=_merge(["mean", "p50", "p95", "p99"])),
        _stat("Hit rate", "Hits / reads per tier (writes excluded).", "percentunit",
              hit_ratio(TIER, a, RI)),
        _stat("Mean access latency", "Mean duration of one access per tier.", "s",
              mean(ACC, TIER, a, RI)),
        _stat("Accesses per second", "Reads and writes per tier.", "ops",
              sum_rate(TIER, f"{ACC}_count", a, RI)),
        _stat("Cost per day", "Cost rate per tier averaged over the time range, x 86400.",
              "currencyUSD", cost(TIER, a, RI), "mean"),
        _panel("bargauge", "Daily cost projection", "Cost rate averaged over the time range "
               "x 86400, per tier and in total.", "currencyUSD", (12, 7), daily, options=bars),
        _panel("bargauge", f"Monthly cost projection ({MONTH_DAYS} days)", "Daily projection "
               f"x {MONTH_DAYS}, per tier and in total.", "currencyUSD", (12, 7), monthly,
               options=bars),
        _series("Hit rate per tier", f"Hits / reads per tier; dashed: the level-1 target "
                f"({l1:.0%}).", "percentunit", (8, 8),
                [(hit_ratio(TIER, a, RI), "{{tiertrace_tier}}")], L1_HIT_RATE),
        _series("Cache effectiveness over time", "Share of lookups served by level 1; dashed: "
                f"the target ({ce:.0%}).", "percentunit", (8, 8),
                [(served_ratio(lk, RI), "L1")], CACHE_EFFECTIVENESS),
        _series("Lookup latency", "Mean and p95 of a whole lookup; dashed: the target for the "
                f"mean ({ms * 1000:g} ms).", "s", (8, 8),
                [(mean(LKP, (), lk, RI), "mean"), (quantile(0.95, LKP, (), lk, RI), "p95")],
                LOOKUP_LATENCY, exemplar=True),
        _heatmap("Lookup latency distribution", "Lookups per second by duration bucket; the "
                 "dots are exemplars: click one to open the trace of that lookup in Jaeger.",
                 sum_rate(("le",), f"{LKP}_bucket", lk, RI)),
        _candidates((*lk, TIER_SEL)),
        _table("Pre-cache suggestions", "Access patterns of the lower tiers the advisor "
               "suggests caching in level 1, with the latency and cost they would save per "
               "day.", (24, 8), advisor, [("Accesses", "short"), ("Latency saved per day", "s"),
               ("Cost saved per day", "currencyUSD")], "Cost saved per day"),
        _series("tiertrace internal errors", "Faults caught inside tiertrace by component; "
                "the application was not affected.", "short", (12, 7),
                [(errors, "{{tiertrace_component}}")]),
        _series("Access errors by error type", "Failed accesses per second by tier and "
                "error.type.", "ops", (12, 7), [(failed, "{{tiertrace_tier}} {{error_type}}")]),
        _ttl_curve(whatif, ce),
    ]  # fmt: skip
    desc = "Redis L1, PostgreSQL L2, Chroma L3: who serves lookups, latency, hit rate, cost."
    return _dashboard("tiertrace-memory-tiers", "Memory tiers", desc, panels, _variables())


def _ttl_curve(queries: Sequence[Query], ce: float) -> Json:
    """The TTL what-if as bars per TTL: predicted cache effectiveness (left axis, target
    line) and cost per day (right axis), TTLs in ascending order."""
    names = ["TTL (s)", "Predicted cache effectiveness", "Predicted cost per day"]
    unit = {names[1]: "percentunit", names[2]: "currencyUSD"}
    overrides = [{"matcher": {"id": "byName", "options": n}, "properties": [
        {"id": "unit", "value": u}, *([{"id": "custom.axisPlacement", "value": "right"}]
                                      if u == "currencyUSD" else [])]}
        for n, u in unit.items()]  # fmt: skip
    rename = {label(TTL): names[0], "Value #A": names[1], "Value #B": names[2]}
    transformations = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": rename}},
        {"id": "convertFieldType", "options": {
            "conversions": [{"targetField": names[0], "destinationType": "number"}]}},
        {"id": "sortBy", "options": {"sort": [{"field": names[0], "desc": False}]}},
    ]  # fmt: skip
    options = {"xField": names[0], "legend": LEGEND, "tooltip": TOOLTIP, "showValue": "never"}
    return _panel("barchart", "TTL what-if", "What the observed traffic would have had with "
                  "each level-1 TTL (a sampled cache-aside replay: TTL from fill, not refreshed "
                  "by reads; no eviction; this process's reads). Dashed on the left axis: the "
                  f"cache-effectiveness target ({ce:.0%}). `tiertrace report` shows the sample "
                  "size and the confidence band.", "percentunit", (24, 9), queries,
                  table=True, overrides=overrides, steps=[(None, "red"), (ce, "green")],
                  defaults={"custom": {"thresholdsStyle": {"mode": "dashed"}}},
                  options=options, transformations=transformations)  # fmt: skip


def tier_operations() -> Json:
    a = (JOB, INST, TIER_SEL, 'db_operation_name=~"$operation"')
    by = (*TIER, "db_operation_name")
    leg = "{{tiertrace_tier}} {{db_operation_name}}"
    rate = sum_rate(by, f"{ACC}_count", a, RI)
    failed = sum_rate((*by, ERR), f"{ACC}_count", a, RI, f'{ERR}!=""')
    pct = [(quantile(q, ACC, by, a, RI), f"p{round(q * 100)} {leg}") for q in (0.5, 0.95, 0.99)]
    summary = [(sum_rate(by, f"{ACC}_count", a, RANGE), ""), (mean(ACC, by, a, RANGE), ""),
               (hit_ratio(by, a, RANGE), "")]  # fmt: skip
    columns = [("Accesses per second", "ops"), ("Mean latency", "s"), ("Hit rate", "percentunit")]
    panels = [
        _series("Accesses per second by operation", "Reads and writes per tier and "
                "db.operation.name.", "ops", (12, 8), [(rate, leg)]),
        _series("Hit rate by operation", "Hits / reads per tier and operation.",
                "percentunit", (12, 8), [(hit_ratio(by, a, RI), leg)]),
        _series("Latency percentiles by operation", "p50, p95 and p99 of one access per tier "
                "and operation; the dots are exemplars (click one for its trace).", "s",
                (24, 9), pct, exemplar=True),
        _series("Errors by error type", "Failed accesses per second by tier, operation and "
                "error.type.", "ops", (12, 8), [(failed, leg + " {{error_type}}")]),
        _table("Operations", "Accesses per second, mean latency and hit rate per tier and "
               "operation over the time range.", (12, 8), summary, columns, "Accesses per second"),
    ]  # fmt: skip
    operation = f"label_values({ACC}_count{{{JOB}, {INST}, {TIER_SEL}}}, db_operation_name)"
    desc = "Per tier and db.operation.name: throughput, latency percentiles, hit rate, errors."
    return _dashboard(
        "tiertrace-tier-operations", "Tier operations", desc, panels,
        _variables(("operation", operation)),
    )  # fmt: skip


DASHBOARDS: dict[str, Callable[[], Json]] = {
    "memory-tiers.json": memory_tiers,
    "tier-operations.json": tier_operations,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}
