"""``tiertrace report --prometheus URL``: the report evaluated in PromQL by Prometheus.

::

    tiertrace report --prometheus http://127.0.0.1:9090 --range 6h --json

Each figure is one instant query (``GET /api/v1/query``, 10 s timeout) over the window given by
``--range`` (a Prometheus duration: ``30m``, ``1h``, ``7d``; default ``1h``): the expressions
of the design document, with ``[range]`` in place of their ``[5m]`` / ``[1h]``:

* hit rate per tier, cache effectiveness, mean lookup latency and daily cost per tier, built
  by `tiertrace._contract.promql` like the recording rules and the dashboards (ratios and means
  are absent, never NaN, without traffic; a tier with reads but no hits has a hit rate of 0);
* accesses, reads, hits, mean / p50 / p95 latency per tier, and lookups per ``served_by``
  (``increase()`` and ``histogram_quantile()`` over the same window);
* the advisor's pre-cache candidates: ``last_over_time()`` of the
  ``tiertrace_advisor_candidate_*`` gauges.

The expressions used are included in the JSON output under ``promql``. A URL that is not
``http(s)://host[:port]``, a bad ``--range``, Prometheus not answering or rejecting a query:
one line on standard error, exit status 2.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tiertrace._cli.report import DEFAULT_TARGETS, ReportError, build, num, tier_row
from tiertrace._contract.names import (
    ADVISOR_ACCESSES,
    ADVISOR_COST_SAVINGS,
    ADVISOR_LATENCY_SAVINGS,
    PATTERN,
    SERVED_BY,
    SERVED_BY_LEVEL,
    label,
)
from tiertrace._contract.promql import (
    ACC,
    BY_TIER,
    BY_TIER_LEVEL,
    DAY,
    HITS,
    LKP,
    READS,
    cost,
    hit_ratio,
    last,
    mean,
    quantile,
    served_ratio,
    sum_increase,
)

_RANGE = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """Seconds in a Prometheus duration such as ``1h30m``."""
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration))


def queries(r: str) -> dict[str, str]:
    """Name -> PromQL of every figure of the report over the window ``r``."""
    served = (label(SERVED_BY), label(SERVED_BY_LEVEL))
    advisor = (label(PATTERN), *BY_TIER)
    return {
        "hit_rate": hit_ratio(BY_TIER, (), r),
        "cache_effectiveness": served_ratio((), r),
        "mean_lookup_latency": mean(LKP, (), (), r),
        "cost_per_day": cost(BY_TIER, (), r),
        "accesses": sum_increase(BY_TIER_LEVEL, f"{ACC}_count", (), r),
        "reads": sum_increase(BY_TIER, f"{ACC}_count", (), r, READS),
        "hits": sum_increase(BY_TIER, f"{ACC}_count", (), r, HITS),
        "mean_latency": mean(ACC, BY_TIER, (), r),
        "p50_latency": quantile(0.5, ACC, BY_TIER, (), r),
        "p95_latency": quantile(0.95, ACC, BY_TIER, (), r),
        "served_by": sum_increase(served, f"{LKP}_count", (), r),
        "p95_lookup_latency": quantile(0.95, LKP, (), (), r),
        "advisor_accesses": last(advisor, ADVISOR_ACCESSES.prometheus, (), r),
        "advisor_latency_savings": last(advisor, ADVISOR_LATENCY_SAVINGS.prometheus, (), r),
        "advisor_cost_savings": last(advisor, ADVISOR_COST_SAVINGS.prometheus, (), r),
    }


def check_url(url: str) -> str:
    """``url`` without a trailing slash; `ReportError` unless it is ``http(s)://host[:port]``."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ReportError(f"bad Prometheus URL {url!r} (expected http://host:port)")
    return url.rstrip("/")


def instant(url: str, expr: str, timeout: float = 10.0) -> list[tuple[dict[str, str], float]]:
    """Evaluate ``expr`` at Prometheus ``url``: (labels, value) per series."""
    query = urllib.parse.urlencode({"query": expr})
    request = urllib.request.Request(f"{url}/api/v1/query?{query}", method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        raise ReportError(_rejected(url, error)) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ReportError(f"Prometheus is not reachable at {url} ({reason})") from None
    except (ValueError, UnicodeDecodeError):
        raise ReportError(f"{url} did not answer like Prometheus (no JSON)") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        raise ReportError(f"Prometheus at {url} rejected a query: {body.get('error', body)}")
    data = body.get("data") or {}
    if data.get("resultType") == "scalar":
        return [({}, num(data["result"][1]))]
    return [(dict(s.get("metric") or {}), num(s["value"][1])) for s in data.get("result") or []]


def _rejected(url: str, error: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(error.read().decode("utf-8")).get("error", "")
    except Exception:
        detail = ""
    return f"Prometheus at {url} answered HTTP {error.code}" + (f": {detail}" if detail else "")


def from_prometheus(url: str, window: str = "1h") -> dict[str, Any]:
    """The report dictionary evaluated by the Prometheus at ``url`` over ``window``."""
    url = check_url(url)
    if not _RANGE.match(window):
        raise ReportError(f"bad --range {window!r} (a Prometheus duration such as 30m, 1h, 7d)")
    exprs = queries(window)
    res = {name: instant(url, expr) for name, expr in exprs.items()}

    def per_tier(name: str) -> dict[str, float]:
        return {m.get("tiertrace_tier", ""): v for m, v in res[name] if m.get("tiertrace_tier")}

    levels = {
        m["tiertrace_tier"]: num(m.get("tiertrace_tier_level"))
        for m, _ in res["accesses"]
        if m.get("tiertrace_tier")
    }
    for m, _ in res["served_by"]:
        if m.get("tiertrace_served_by") not in (None, "", "none"):
            levels.setdefault(m["tiertrace_served_by"], num(m.get("tiertrace_served_by_level")))
    cols = {
        n: per_tier(n)
        for n in (
            "hit_rate",
            "cost_per_day",
            "reads",
            "hits",
            "mean_latency",
            "p50_latency",
            "p95_latency",
        )
    }
    accesses = per_tier("accesses")
    served: dict[str, float] = {}
    for m, v in res["served_by"]:
        name = m.get("tiertrace_served_by") or "none"
        served[name] = served.get(name, 0.0) + v
    for name in cols["cost_per_day"]:
        levels.setdefault(name, 0)
    tiers = {
        name: tier_row(
            level=int(level),
            accesses=accesses.get(name, 0.0),
            reads=cols["reads"].get(name, 0.0),
            hits=cols["hits"].get(name, 0.0),
            hit_rate=cols["hit_rate"].get(name, 0.0),
            mean_ms=cols["mean_latency"].get(name, 0.0) * 1000,
            p50_ms=cols["p50_latency"].get(name, 0.0) * 1000,
            p95_ms=cols["p95_latency"].get(name, 0.0) * 1000,
            served=served.get(name, 0.0),
            cost_usd=cols["cost_per_day"].get(name, 0.0) * seconds(window) / DAY,
            cost_per_day_usd=cols["cost_per_day"].get(name, 0.0),
        )
        for name, level in levels.items()
    }
    report = build(
        source={"kind": "prometheus", "url": url, "range": window},
        generated_at="",
        elapsed_s=seconds(window),
        tiers=tiers,
        served_by=served,
        mean_ms=_scalar(res["mean_lookup_latency"]) * 1000,
        p95_ms=_scalar(res["p95_lookup_latency"]) * 1000,
        suggestions=_suggestions(res, window, tiers),
        limits=dict(DEFAULT_TARGETS),
    )
    if res["cache_effectiveness"]:
        report["cache_effectiveness"] = _scalar(res["cache_effectiveness"])
        from tiertrace._cli.report import evaluate

        report["targets"] = evaluate(report, dict(DEFAULT_TARGETS))
    report["promql"] = exprs
    return report


def _scalar(result: list[tuple[dict[str, str], float]]) -> float:
    return result[0][1] if result else 0.0


def _suggestions(
    res: dict[str, list[tuple[dict[str, str], float]]], window: str, tiers: dict[str, Any]
) -> list[dict[str, Any]]:
    def keyed(name: str) -> dict[tuple[str, str], float]:
        return {
            (m.get("tiertrace_pattern", ""), m.get("tiertrace_tier", "")): v for m, v in res[name]
        }

    accesses, latency, cost = (
        keyed("advisor_accesses"),
        keyed("advisor_latency_savings"),
        keyed("advisor_cost_savings"),
    )
    l1 = next((n for n, r in tiers.items() if r["level"] == 1), "L1")
    out: list[dict[str, Any]] = []
    for (pattern, tier), count in accesses.items():
        lat, usd = latency.get((pattern, tier), 0.0), cost.get((pattern, tier), 0.0)
        out.append(
            {
                "kind": "pre-cache",
                "pattern": pattern,
                "tier": tier,
                "message": f"Pre-cache {pattern} in {l1}: read {count:,.0f} times in {window} from "
                f"{tier}, saves {lat:,.0f} s and ${usd:,.2f} per day",
                "accesses": count,
                "ttl_s": None,
                "latency_savings_s_per_day": lat,
                "cost_savings_usd_per_day": usd,
            }
        )
    out.sort(
        key=lambda s: (-num(s["latency_savings_s_per_day"]), -num(s["cost_savings_usd_per_day"]))
    )
    return out
