"""Targets, PromQL and the Prometheus rules of tiertrace, generated from one place.

:data:`TARGETS` is the only place where the service targets live::

    TARGETS = {
        "cache_effectiveness": 0.70,          # share of lookups served by level 1, at least
        "lookup_latency_seconds_mean": 0.05,  # mean lookup latency in seconds, at most
        "l1_hit_ratio": 0.40,                 # hit rate of every level-1 tier, at least
    }

From it come the shipped ``prometheus/rules/tiertrace.rules.yml`` (a constant series per
target, e.g. ``tiertrace:target:cache_effectiveness``, that the alerts compare against) and
the thresholds of the Grafana dashboards (see ``tiertrace._contract.dashboards``). To change a
target,
edit it here and regenerate both from the repository root::

    python -m tiertrace._contract.dashboards --write grafana/dashboards

The query functions (:func:`hit_ratio`, :func:`served_ratio`, :func:`mean`,
:func:`quantile`, :func:`cost`) are the PromQL of the design, written once: the recording
rules call them with ``[5m]`` over all jobs, the dashboards with ``[$__rate_interval]`` and
the ``job``/``tier`` variables, so a rule and the panel showing the same quantity cannot
drift apart. Ratios exist only while there is traffic (no NaN), and a tier with reads but no
hits has a hit rate of 0 rather than no series::

    >>> print(cost(("tiertrace_tier",), (), "1h"))
    sum by (tiertrace_tier) (rate(tiertrace_cost_usd_total[1h])) * 86400
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

Json = dict[str, Any]

TARGETS: dict[str, float] = {
    "cache_effectiveness": 0.70,
    "lookup_latency_seconds_mean": 0.05,
    "l1_hit_ratio": 0.40,
}
RULES_PATH = "prometheus/rules/tiertrace.rules.yml"
DAY, MONTH_DAYS = 86400, 30
ACC, LKP = "tiertrace_access_duration_seconds", "tiertrace_lookup_duration_seconds"
COST = "tiertrace_cost_usd_total"
TIER, TIER_L = ("tiertrace_tier",), ("tiertrace_tier", "tiertrace_tier_level")


def sum_rate(by: Sequence[str], metric: str, sel: Sequence[str], w: str, *extra: str) -> str:
    matchers = ", ".join([*sel, *extra])
    selector = f"{metric}{{{matchers}}}" if matchers else metric
    grouping = f" by ({', '.join(by)}) " if by else ""
    return f"sum{grouping}(rate({selector}[{w}]))"


def hit_ratio(by: Sequence[str], sel: Sequence[str], w: str) -> str:
    """Hits / reads (DESIGN §5); 0 for a tier without hits, absent without reads."""
    hits = sum_rate(by, f"{ACC}_count", sel, w, 'tiertrace_hit="true"')
    reads = sum_rate(by, f"{ACC}_count", sel, w, 'tiertrace_hit!=""')
    return f"(\n  {hits}\n  or 0 * {reads}\n)\n/ ({reads} > 0)"


def served_ratio(sel: Sequence[str], w: str) -> str:
    """Cache effectiveness: the share of lookups served by level 1 (DESIGN §5)."""
    l1 = sum_rate((), f"{LKP}_count", sel, w, 'tiertrace_served_by_level="1"')
    lookups = sum_rate((), f"{LKP}_count", sel, w)
    return f"(\n  {l1}\n  or 0 * {lookups}\n)\n/ ({lookups} > 0)"


def mean(metric: str, by: Sequence[str], sel: Sequence[str], w: str) -> str:
    """Mean of a histogram: rate of ``_sum`` / rate of ``_count``, absent without traffic."""
    count = sum_rate(by, f"{metric}_count", sel, w)
    return f"{sum_rate(by, f'{metric}_sum', sel, w)}\n/ ({count} > 0)"


def quantile(q: float, metric: str, by: Sequence[str], sel: Sequence[str], w: str) -> str:
    """``histogram_quantile`` of a histogram, absent (not NaN) without traffic."""
    buckets = sum_rate((*by, "le"), f"{metric}_bucket", sel, w)
    count = sum_rate(by, f"{metric}_count", sel, w)
    return f"histogram_quantile({q}, {buckets})\nand on({', '.join(by)}) ({count} > 0)"


def cost(by: Sequence[str], sel: Sequence[str], w: str, days: int = 1) -> str:
    """Cost projection: the USD rate times the seconds of ``days`` days (DESIGN §5)."""
    return f"{sum_rate(by, COST, sel, w)} * {DAY * days}"


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
    rules = {f"tiertrace:target:{name}": f"vector({value})" for name, value in TARGETS.items()}
    accesses = f"{ACC}_count"
    return rules | {
        "tiertrace:lookups:rate5m": sum_rate((), f"{LKP}_count", (), "5m"),
        "tiertrace_tier:reads:rate5m": sum_rate(TIER_L, accesses, (), "5m", 'tiertrace_hit!=""'),
        "tiertrace_tier:accesses:rate5m": sum_rate(TIER_L, accesses, (), "5m"),
        "tiertrace_tier:tiertrace_hit_ratio:rate5m": hit_ratio(TIER_L, (), "5m"),
        "tiertrace:cache_effectiveness:ratio_rate5m": served_ratio((), "5m"),
        "tiertrace:lookup_latency_seconds:mean5m": mean(LKP, (), (), "5m"),
        "tiertrace:lookup_latency_seconds:p95_5m": quantile(0.95, LKP, (), (), "5m"),
        "tiertrace_tier:access_latency_seconds:mean5m": mean(ACC, TIER_L, (), "5m"),
        "tiertrace_tier:access_latency_seconds:p95_5m": quantile(0.95, ACC, TIER_L, (), "5m"),
        "tiertrace_tier:cost_usd:daily_projection": cost(TIER_L, (), "1h"),
        "tiertrace:cost_usd:daily_projection": cost((), (), "1h"),
        "tiertrace_tier:cost_usd:monthly_projection": cost(TIER_L, (), "1h", MONTH_DAYS),
        "tiertrace:cost_usd:monthly_projection": cost((), (), "1h", MONTH_DAYS),
    }


def alerts() -> list[Json]:
    """The alerting rules; each compares a recording rule with its target series."""
    t, errors = TARGETS, "tiertrace_self_errors_total"
    per_component = "sum by (job, tiertrace_component)"
    with_traffic = "\nand on() tiertrace:lookups:rate5m > 0"
    return [
        _alert(
            "TiertraceCacheEffectivenessLow",
            "tiertrace:cache_effectiveness:ratio_rate5m\n"
            "  < on() tiertrace:target:cache_effectiveness" + with_traffic,
            "15m",
            "Too few lookups are served by the level-1 cache",
            "{{ $value | humanizePercentage }} of lookups were served by level 1 over the last "
            f"5 minutes; the target is at least {t['cache_effectiveness']:.0%}.",
        ),
        _alert(
            "TiertraceLookupLatencyHigh",
            "tiertrace:lookup_latency_seconds:mean5m\n"
            "  > on() tiertrace:target:lookup_latency_seconds_mean" + with_traffic,
            "10m",
            "Mean lookup latency is above target",
            "Lookups took {{ $value | humanizeDuration }} on average over the last 5 minutes; "
            f"the target is at most {t['lookup_latency_seconds_mean'] * 1000:g}ms.",
        ),
        _alert(
            "TiertraceL1HitRateLow",
            'tiertrace_tier:tiertrace_hit_ratio:rate5m{tiertrace_tier_level="1"}\n'
            "  < on() group_left() tiertrace:target:l1_hit_ratio\n"
            "and on(tiertrace_tier, tiertrace_tier_level) tiertrace_tier:reads:rate5m > 0",
            "15m",
            "Level-1 tier {{ $labels.tiertrace_tier }} hit rate is low",
            "{{ $value | humanizePercentage }} of reads on {{ $labels.tiertrace_tier }} hit "
            f"over the last 5 minutes; the target is at least {t['l1_hit_ratio']:.0%}.",
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
    head = "# Generated by `python -m tiertrace._contract.dashboards --write grafana/dashboards`.\n"
    return (
        head
        + "# Edit TARGETS or the queries in tiertrace/_rules.py, not this file.\n"
        + ("\n".join(to_yaml(rules())) + "\n")
    )
