"""The Prometheus rules of tiertrace: recording rules, target series and alerts (build time).

Generates ``src/tiertrace/assets/prometheus/rules/tiertrace.rules.yml`` (see `tools.generate`)
from the contract: the expressions are the builders of `tiertrace._contract.promql`, the
targets those of `tiertrace._contract.targets` (one constant series per target, e.g.
``tiertrace:target:cache_effectiveness``, that the alerts compare against). To change a query
or a target, edit the contract and regenerate from the repository root::

    python -m tools.generate --write
"""

from __future__ import annotations

import json
import re
from typing import Any

from tiertrace._contract import promql as q
from tiertrace._contract.names import COMPONENT, SELF_ERRORS, label
from tiertrace._contract.promql import (
    ACC,
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
from tiertrace._contract.targets import CACHE_EFFECTIVENESS, L1_HIT_RATE, LOOKUP_LATENCY
from tiertrace._contract.targets import TARGETS as _TARGETS

Json = dict[str, Any]

TARGETS: dict[str, float] = {t.series: t.prometheus_value for t in _TARGETS}
"""Target series suffix -> value in Prometheus units (derived from the contract)."""
RULES_PATH = "prometheus/rules/tiertrace.rules.yml"
"""Where the rules file lives in the shipped stack (relative to ``tiertrace/assets``)."""


def _alert(name: str, expr: str, for_: str, summary: str, description: str) -> Json:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": "warning"},
        "annotations": {"summary": summary, "description": description},
    }


def recording_rules() -> dict[str, str]:
    """Recording rule name -> expression; the targets first."""
    rules = {t.record: f"vector({t.prometheus_value})" for t in _TARGETS}
    accesses = f"{ACC}_count"
    return rules | {
        q.LOOKUPS_RATE: sum_rate((), f"{LKP}_count", (), "5m"),
        q.TIER_READS_RATE: sum_rate(BY_TIER_LEVEL, accesses, (), "5m", READS),
        q.TIER_ACCESSES_RATE: sum_rate(BY_TIER_LEVEL, accesses, (), "5m"),
        q.TIER_HIT_RATIO: hit_ratio(BY_TIER_LEVEL, (), "5m"),
        q.CACHE_EFFECTIVENESS: served_ratio((), "5m"),
        q.LOOKUP_LATENCY_MEAN: mean(LKP, (), (), "5m"),
        q.LOOKUP_LATENCY_P95: quantile(0.95, LKP, (), (), "5m"),
        q.TIER_ACCESS_LATENCY_MEAN: mean(ACC, BY_TIER_LEVEL, (), "5m"),
        q.TIER_ACCESS_LATENCY_P95: quantile(0.95, ACC, BY_TIER_LEVEL, (), "5m"),
        q.TIER_COST_DAILY: cost(BY_TIER_LEVEL, (), "1h"),
        q.COST_DAILY: cost((), (), "1h"),
        q.TIER_COST_MONTHLY: cost(BY_TIER_LEVEL, (), "1h", MONTH_DAYS),
        q.COST_MONTHLY: cost((), (), "1h", MONTH_DAYS),
    }


def alerts() -> list[Json]:
    """The alerting rules; each compares a recording rule with its target series."""
    ce, lat, l1 = CACHE_EFFECTIVENESS, LOOKUP_LATENCY, L1_HIT_RATE
    errors = SELF_ERRORS.prometheus
    per_component = f"sum by (job, {label(COMPONENT)})"
    with_traffic = f"\nand on() {q.LOOKUPS_RATE} > 0"
    tier, tier_level = BY_TIER_LEVEL
    return [
        _alert(
            "TiertraceCacheEffectivenessLow",
            f"{q.CACHE_EFFECTIVENESS}\n  < on() {ce.record}" + with_traffic,
            "15m",
            "Too few lookups are served by the level-1 cache",
            "{{ $value | humanizePercentage }} of lookups were served by level 1 over the last "
            f"5 minutes; the target is at least {ce.prometheus_value:.0%}.",
        ),
        _alert(
            "TiertraceLookupLatencyHigh",
            f"{q.LOOKUP_LATENCY_MEAN}\n  > on() {lat.record}" + with_traffic,
            "10m",
            "Mean lookup latency is above target",
            "Lookups took {{ $value | humanizeDuration }} on average over the last 5 minutes; "
            f"the target is at most {lat.value:g}{lat.unit}.",
        ),
        _alert(
            "TiertraceL1HitRateLow",
            f'{q.TIER_HIT_RATIO}{{{tier_level}="1"}}\n'
            f"  < on() group_left() {l1.record}\n"
            f"and on({tier}, {tier_level}) {q.TIER_READS_RATE} > 0",
            "15m",
            "Level-1 tier {{ $labels.tiertrace_tier }} hit rate is low",
            "{{ $value | humanizePercentage }} of reads on {{ $labels.tiertrace_tier }} hit "
            f"over the last 5 minutes; the target is at least {l1.prometheus_value:.0%}.",
        ),
        _alert(
            "TiertraceTelemetryAbsent",
            f"absent({ACC}_count)",
            "10m",
            "No tiertrace access metrics reach Prometheus",
            f"{ACC}_count has had no series for 10 minutes: the application, its OTLP export "
            "or the collector is down, or no tier is instrumented.",
        ),
        _alert(
            "TiertraceSelfErrors",
            # the second branch catches the first error of a process: a new series has no
            # earlier sample, so increase() alone would miss it
            f"{per_component} (increase({errors}[10m])) > 0\n"
            f"or {per_component} ({errors} unless {errors} offset 10m) > 0",
            "1m",
            "tiertrace caught internal errors in {{ $labels.tiertrace_component }}",
            "{{ $value | humanize }} internal errors in {{ $labels.tiertrace_component }} of "
            "{{ $labels.job }} in the last 10 minutes; the application calls went on unharmed "
            "but their telemetry may be incomplete. See the application log.",
        ),
    ]


def rules() -> Json:
    """The rule file as data: a recording group and an alerting group."""
    recording = [{"record": name, "expr": expr} for name, expr in recording_rules().items()]
    return {
        "groups": [
            {"name": "tiertrace.recording", "rules": recording},
            {"name": "tiertrace.alerts", "rules": alerts()},
        ]
    }


def _scalar(v: object) -> str:
    if isinstance(v, str):
        plain = re.fullmatch(r"[A-Za-z_][\w:.-]*", v) and v not in {"true", "false", "null"}
        return v if plain else "'" + v.replace("'", "''") + "'"
    return json.dumps(v)


def to_yaml(node: object, ind: str = "") -> list[str]:
    """Emit dicts, lists, strings and numbers as block YAML (multi-line strings as ``|-``)."""
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, (dict, list)):
                out += [f"{ind}{k}:", *to_yaml(v, ind + "  ")]
            elif isinstance(v, str) and "\n" in v:
                out += [f"{ind}{k}: |-", *(f"{ind}  {line}" for line in v.splitlines())]
            else:
                out.append(f"{ind}{k}: {_scalar(v)}")
        return out
    for item in node if isinstance(node, list) else []:
        sub = to_yaml(item, ind + "  ") if isinstance(item, (dict, list)) else [_scalar(item)]
        out += [f"{ind}- {sub[0].lstrip()}", *sub[1:]]
    return out


def render_rules() -> str:
    """The text of ``prometheus/rules/tiertrace.rules.yml``."""
    head = "# Generated by `python -m tools.generate --write`; do not edit.\n"
    head += "# Targets and queries live in tiertrace/_contract (targets.py, promql.py).\n"
    return head + "\n".join(to_yaml(rules())) + "\n"
