"""``tiertrace report``: how the memory tiers did, from a snapshot file or from Prometheus.

::

    tiertrace report --snapshot run.json             # a file from `tiertrace demo --snapshot`
                                                     # or json.dump(tiertrace.stats(), f)
    tiertrace report --prometheus http://127.0.0.1:9090 --range 1h
    tiertrace report --snapshot run.json --json      # normalized JSON (same for both sources)
    tiertrace report --snapshot run.json --html report.html   # one self-contained HTML page
    tiertrace report --snapshot run.json --check     # exit status 1 when a target is missed

The report shows per tier the hit rate, mean / p50 / p95 latency, accesses, lookups served and
cost per day; which tier served the lookups; the three targets (cache effectiveness > 70 %,
mean lookup latency < 50 ms, L1 hit rate > 40 %, or the thresholds recorded in the snapshot)
met or missed; the daily and monthly (30 days) cost projection per tier and in total, at the
observed rate; the prices the costs were computed with and how to set real ones; and the
advisor's suggestions, pre-cache candidates first; and, from a snapshot, the TTL what-if:
the smallest level-1 TTL that reaches the cache-effectiveness target, with the predicted curve,
its sample size and 95 % band.

Cost projections follow DESIGN §5: a tier's cost per day is its cost over the time that tier
was actually observed, and there is no number — the report says ``collecting (N s of 60 s)``
— until the tier has been observed for ``min_projection_window_s`` (60 s by default). The total
is shown only once every tier with traffic has a projection. The prices are tiertrace's
placeholder defaults unless the snapshot says they came from ``init()`` or the environment;
the report then says how to set real ones.

From a snapshot the ``total`` view (since ``init()``) is reported; ``--window`` reports the
``window`` view (the last ``stats_window_s`` seconds, 60 by default) instead. From Prometheus
the PromQL of the design document is evaluated over ``--range`` (default ``1h``) through the
HTTP API (``/api/v1/query``); see `tiertrace._cli.prometheus`. Both sources become the same
report dictionary, so the text, JSON and HTML renderers serve both.

Exit status: 0 ok; 1 with ``--check`` when a target is missed; 2 when the snapshot file is
missing or is not a tiertrace snapshot, the URL is bad, or Prometheus does not answer (one
line on standard error says why).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tiertrace._advisor.findings import SUGGESTION_FIELDS
from tiertrace._advisor.whatif import fmt_ttl, target_ttl
from tiertrace._contract.promql import MONTH_DAYS
from tiertrace._contract.targets import CACHE_EFFECTIVENESS, L1_HIT_RATE, LOOKUP_LATENCY, TARGETS

DEFAULT_TARGETS = {t.name: (t.op, t.value) for t in TARGETS}
TARGET_LABELS = {t.name: t.label for t in TARGETS}
TIER_FIELDS = ("accesses", "reads", "hits", "hit_rate", "mean_ms", "p50_ms", "p95_ms", "served")
SHOWN = 5  # suggestions in the text report
PRICE_HINT = (  # how to set real prices, shown while the defaults are in use
    "set real prices: init(prices={'redis': 0.0002, 'postgresql': 0.002, 'chroma': 0.02}),",
    "  or TIERTRACE_PRICES='redis=0.0002,postgresql=0.002,chroma=0.02' (redis:GET=… for one "
    "operation),",
    "  or per tier: Tier('redis', 1, 'redis', cost_per_access=0.0002, "
    "cost_per_operation={'GET': 0.0001})",
)
PRICE_SOURCES = {
    "defaults": "tiertrace's placeholder defaults, not your prices",
    "init": "yours, from init()",
    "environment": "yours, from TIERTRACE_PRICES",
}


class ReportError(Exception):
    """Why a report cannot be made; ``str()`` is the one line shown to the user."""


def num(value: Any) -> float:
    """A finite float (NaN, infinities, None and junk become 0.0)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return 0.0
    return out if math.isfinite(out) else 0.0


def whole(value: float) -> float | int:
    """``value`` as an int when it is a whole number (counts print as counts)."""
    return int(value) if value == int(value) else value


def load_snapshot(path: str) -> dict[str, Any]:
    """Read a `tiertrace.stats()` snapshot JSON file; `ReportError` when it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"snapshot file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"cannot read snapshot file {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise ReportError(f"snapshot file {path} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ReportError(f"snapshot file {path} is not a tiertrace snapshot (not an object)")
    return data


def _view(snap: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    view = snap.get(name)
    problem = None
    if not isinstance(view, dict):
        problem = f"no '{name}' view"
    elif not isinstance(view.get("tiers"), dict) or not view["tiers"]:
        problem = f"no '{name}.tiers'"
    elif not isinstance(view.get("served_by"), dict):
        problem = f"no '{name}.served_by'"
    elif not all(isinstance(row, dict) for row in view["tiers"].values()):
        problem = f"'{name}.tiers' holds a non-object"
    if problem is not None:
        raise ReportError(f"{source} is not a tiertrace snapshot ({problem})")
    assert isinstance(view, dict)
    return view


def thresholds(snap: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """Target thresholds recorded in a snapshot, else the defaults."""
    found = dict(DEFAULT_TARGETS)
    for row in snap.get("targets") or []:
        if isinstance(row, dict) and row.get("name") in found and row.get("op") in ("<", ">"):
            found[row["name"]] = (row["op"], num(row.get("target")))
    return found


def from_snapshot(
    snap: dict[str, Any], source: str = "snapshot", view: str = "total"
) -> dict[str, Any]:
    """The report dictionary of a `tiertrace.stats()` snapshot (its ``total`` or ``window``)."""
    v = _view(snap, view, source)
    tiers = {}
    for name, row in v["tiers"].items():
        tiers[str(name)] = tier_row(
            level=int(num(row.get("level"))),
            cost_usd=num(row.get("cost_usd")),
            cost_per_day_usd=None
            if row.get("cost_per_day_usd") is None
            else num(row.get("cost_per_day_usd")),
            projection=str(row.get("projection") or _projection_of(row)),
            observed_s=num(row.get("observed_s")),
            projection_needs_s=num(row.get("projection_needs_s")),
            **{f: num(row.get(f)) for f in TIER_FIELDS},
        )
    report = build(
        source={"kind": "snapshot", "name": source, "view": view},
        generated_at=str(snap.get("generated_at") or ""),
        elapsed_s=num(v.get("elapsed_s")),
        tiers=tiers,
        served_by={str(k): num(c) for k, c in v["served_by"].items()},
        mean_ms=num(v.get("mean_lookup_latency_ms")),
        p95_ms=num(v.get("p95_lookup_latency_ms")),
        suggestions=snap.get("suggestions") or [],
        limits=thresholds(snap),
        min_projection_s=num(v.get("min_projection_window_s")),
        prices=snap.get("prices") if isinstance(snap.get("prices"), dict) else None,
    )
    report["lookups"] = whole(num(v.get("lookups")))
    report["cache_effectiveness"] = num(v.get("cache_effectiveness"))
    report["targets"] = evaluate(report, thresholds(snap))
    if isinstance(snap.get("demo"), dict):
        report["demo"] = snap["demo"]
    curve = snap.get("ttl_curve")
    report["ttl_curve"] = [r for r in curve if isinstance(r, dict)] if curve else []
    report["whatif"] = snap["whatif"] if isinstance(snap.get("whatif"), dict) else {}
    return report


def _projection_of(row: dict[str, Any]) -> str:
    """The projection state of a row that does not say (a snapshot of an older version)."""
    if row.get("cost_per_day_usd") is None:
        return "collecting"
    return "ready" if num(row.get("accesses")) else "no traffic"


def tier_row(**values: Any) -> dict[str, Any]:
    """One tier's report row; counts are integers when whole (``increase()`` may not be).

    ``cost_per_day_usd`` is None while the tier's projection is ``"collecting"`` (then
    ``projection_needs_s`` says how long is still missing); ``projection`` defaults to
    ``"ready"`` (Prometheus rates are projections already).
    """
    counts = ("accesses", "reads", "hits", "served", "level")
    row = {k: (whole(v) if k in counts else v) for k, v in values.items()}
    row.setdefault("projection", "ready" if row["cost_per_day_usd"] is not None else "collecting")
    row.setdefault("observed_s", 0.0)
    row.setdefault("projection_needs_s", 0.0)
    day = row["cost_per_day_usd"]
    row["cost_per_month_usd"] = None if day is None else day * MONTH_DAYS
    return row


def build(
    *,
    source: dict[str, Any],
    generated_at: str,
    elapsed_s: float,
    tiers: dict[str, dict[str, Any]],
    served_by: dict[str, float],
    mean_ms: float,
    p95_ms: float,
    suggestions: list[Any],
    limits: dict[str, tuple[str, float]],
    min_projection_s: float = 0.0,
    prices: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the report dictionary every renderer reads (see the module documentation).

    ``cost`` holds the total projection: ``per_day_usd`` / ``per_month_usd`` (None while any
    tier with traffic is collecting), ``projection``, ``projection_needs_s``,
    ``min_projection_window_s`` and ``spent_usd`` (the cost observed so far). ``prices`` is
    the snapshot's price table (None when the source does not know the prices).
    """
    ordered = dict(sorted(tiers.items(), key=lambda item: (item[1]["level"], item[0])))
    lookups = sum(served_by.values())
    l1 = sum(served_by.get(n, 0.0) for n, r in ordered.items() if r["level"] == 1)
    active = [r for r in ordered.values() if r["projection"] != "no traffic"]
    waiting = [r for r in active if r["projection"] == "collecting"]
    per_day: float | None = None
    if not waiting:
        per_day = sum(r["cost_per_day_usd"] or 0.0 for r in active)
    cost = {
        "per_day_usd": per_day,
        "per_month_usd": None if per_day is None else per_day * MONTH_DAYS,
        "projection": "collecting" if waiting else "ready" if active else "no traffic",
        "projection_needs_s": max((r["projection_needs_s"] for r in waiting), default=0.0),
        "min_projection_window_s": min_projection_s,
        "spent_usd": sum(num(r.get("cost_usd")) for r in ordered.values()),
    }
    report: dict[str, Any] = {
        "source": source,
        "generated_at": generated_at,
        "elapsed_s": elapsed_s,
        "lookups": whole(lookups),
        "served_by": {
            **{n: whole(served_by.get(n, 0)) for n in ordered},
            "none": whole(served_by.get("none", 0)),
        },
        "cache_effectiveness": l1 / lookups if lookups else 0.0,
        "mean_lookup_latency_ms": mean_ms,
        "p95_lookup_latency_ms": p95_ms,
        "tiers": ordered,
        "cost": cost,
        "prices": prices,
        "suggestions": [
            {f: s.get(f) for f in SUGGESTION_FIELDS} for s in suggestions if isinstance(s, dict)
        ],
    }
    report["targets"] = evaluate(report, limits)
    return report


def evaluate(report: dict[str, Any], limits: dict[str, tuple[str, float]]) -> list[dict[str, Any]]:
    """The targets, met or missed, from the report's own figures (as `tiertrace.stats()` does)."""
    l1 = [r for r in report["tiers"].values() if r["level"] == 1 and r["reads"]]
    values = {
        CACHE_EFFECTIVENESS.name: report["cache_effectiveness"],
        LOOKUP_LATENCY.name: report["mean_lookup_latency_ms"],
        L1_HIT_RATE.name: sum(r["hits"] for r in l1) / sum(r["reads"] for r in l1) if l1 else 0.0,
    }
    rows = []
    for name, (op, target) in limits.items():
        value = values[name]
        met = bool(report["lookups"]) and (value > target if op == ">" else value < target)
        rows.append({"name": name, "op": op, "target": target, "value": value, "met": met})
    return rows


def missed(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets the report misses."""
    return [t for t in report["targets"] if not t["met"]]


def fmt_target(name: str, value: float) -> str:
    """A target's value as people read it (percent or milliseconds)."""
    return f"{value:.1f} ms" if name.endswith("_ms") else f"{value * 100:.1f} %"


def money(value: float) -> str:
    return f"${value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"${value:,.4f}"


def saving(per_day: float) -> str:
    """A predicted change of cost: "saves $X per day", or "costs $X more per day"."""
    if per_day >= 0:
        return f"saves {money(per_day)} per day"
    return f"costs {money(-per_day)} more per day"


def collecting(needs_s: float, window_s: float) -> str:
    """``collecting (N s of 60 s)``: how much of the projection window has been observed."""
    if window_s <= 0:
        return "collecting"
    seen = max(window_s - needs_s, 0.0)
    return f"collecting ({seen:.0f} s of {window_s:g} s)"


def projected(value: float | None, needs_s: float, window_s: float) -> str:
    """A projected amount, or ``collecting (N s of 60 s)`` while there is none yet."""
    return money(value) if value is not None else collecting(needs_s, window_s)


def tier_projection(report: dict[str, Any], row: dict[str, Any], month: bool = False) -> str:
    """One tier's cost per day (or month), or ``collecting (N s of 60 s)``."""
    window = report["cost"]["min_projection_window_s"]
    value = row["cost_per_month_usd" if month else "cost_per_day_usd"]
    return projected(value, row["projection_needs_s"], window)


def total_projection(report: dict[str, Any], month: bool = False) -> str:
    """The total cost per day (or month), or ``collecting (N s of 60 s)``."""
    c = report["cost"]
    value = c["per_month_usd" if month else "per_day_usd"]
    return projected(value, c["projection_needs_s"], c["min_projection_window_s"])


def price_lines(report: dict[str, Any]) -> list[str]:
    """Which prices the costs were computed with, and (for the defaults) how to set real ones."""
    prices = report.get("prices")
    if not isinstance(prices, dict):
        if (report.get("source") or {}).get("kind") == "prometheus":
            return ["prices: as recorded by the instrumented processes (tiertrace.cost.usd)"]
        return ["prices: not recorded in this snapshot"]
    source = str(prices.get("source") or "defaults")
    parts = []
    for name, p in prices.items():
        if not isinstance(p, dict):
            continue
        ops = p.get("per_operation") or {}
        extra = f" ({', '.join(f'{op} {num(v):g}' for op, v in ops.items())})" if ops else ""
        parts.append(f"{name} {num(p.get('per_access')):g}{extra}")
    lines = [f"prices used: {PRICE_SOURCES.get(source, source)} (USD per access)"]
    lines.append("  " + ", ".join(parts))
    if source == "defaults":
        lines += PRICE_HINT
    return lines


def source_line(report: dict[str, Any]) -> str:
    src = report["source"]
    if src["kind"] == "prometheus":
        where = f"Prometheus {src['url']}, last {src['range']}"
    else:
        where = f"{src['name']} ({src['view']} view)"
    span = f" over {report['elapsed_s']:,.1f} s" if report["elapsed_s"] else ""
    return f"tiertrace report: {where}, {report['lookups']:,.0f} lookups{span}"


def render_text(report: dict[str, Any]) -> str:
    """The report as plain text (what ``tiertrace report`` and the demo print)."""
    lines = [source_line(report), ""]
    head = f"{'tier':<14}{'level':>5}{'hit rate':>10}{'mean ms':>9}{'p50 ms':>8}{'p95 ms':>8}"
    lines.append(head + f"{'accesses':>10}{'served':>9}{'cost/day':>12}")
    for name, r in report["tiers"].items():
        day = r["cost_per_day_usd"]
        lines.append(
            f"{name[:13]:<14}{r['level']:>5}{r['hit_rate'] * 100:>8.1f} %{r['mean_ms']:>9.2f}"
            f"{r['p50_ms']:>8.2f}{r['p95_ms']:>8.2f}{r['accesses']:>10,.0f}{r['served']:>9,.0f}"
            f"{money(day) if day is not None else 'collecting':>12}"
        )
    lookups = report["lookups"] or 1
    shares = "  ".join(f"{n} {c / lookups * 100:.1f} %" for n, c in report["served_by"].items())
    lines += ["", f"served by: {shares}"]
    lines.append(
        f"lookups: {report['lookups']:,.0f}, mean {report['mean_lookup_latency_ms']:.2f} ms, "
        f"p95 {report['p95_lookup_latency_ms']:.2f} ms"
    )
    lines += ["", "targets:"]
    for t in report["targets"]:
        label = TARGET_LABELS.get(t["name"], t["name"])
        want = fmt_target(t["name"], t["target"])
        lines.append(
            f"  {'met   ' if t['met'] else 'MISSED'}  {label:<21}"
            f"{fmt_target(t['name'], t['value']):>10}"
            f"  (target {t['op']} {want})"
        )
    lines += ["", "cost projection (at each tier's observed rate):"]
    lines.append(f"  {'tier':<14}{'per day':>14}{'per month':>16}")
    for name, r in report["tiers"].items():
        lines.append(f"  {name[:13]:<14}" + _pair(tier_projection(report, r), r, report, True))
    cost = report["cost"]
    lines.append(f"  {'total':<14}" + _pair(total_projection(report), cost, report, False))
    if cost["projection"] == "collecting":
        lines.append(
            f"  no projection before {cost['min_projection_window_s']:g} s of traffic per "
            f"tier; cost so far {money(cost['spent_usd'])}"
            + (f" in {report['elapsed_s']:,.1f} s" if report["elapsed_s"] else "")
        )
    lines += ["", *price_lines(report)]
    lines += ["", *whatif_lines(report)]
    lines += ["", "suggestions:"]
    if not report["suggestions"]:
        lines.append("  none")
    for i, s in enumerate(report["suggestions"][:SHOWN], 1):
        lines.append(f"  {i}. [{s.get('kind')}] {s.get('message')}")
    more = len(report["suggestions"]) - SHOWN
    if more > 0:
        lines.append(f"  … and {more} more (--json or --html lists them)")
    return "\n".join(lines) + "\n"


def _pair(day: str, row: dict[str, Any], report: dict[str, Any], tier: bool) -> str:
    """The per-day and per-month cells of the cost table (one wide cell while collecting)."""
    if day.startswith("collecting"):
        return f"{day:>30}"
    month = tier_projection(report, row, True) if tier else total_projection(report, True)
    return f"{day:>14}{month:>16}"


def whatif_lines(report: dict[str, Any]) -> list[str]:
    """The TTL what-if: the TTL the target needs, and the curve with its band and sample."""
    rows, meta = report.get("ttl_curve") or [], report.get("whatif") or {}
    lines = ["TTL what-if (level 1):"]
    if not rows:
        status = meta.get("status")
        if status == "collecting":
            lines.append(
                f"  collecting: no prediction before {num(meta.get('min_window_s')):g} s of "
                f"sampled L1 reads ({num(meta.get('observed_s')):.0f} s so far)"
            )
        else:
            lines.append(f"  not available ({status or 'no curve in this snapshot'})")
        return lines
    target = num(meta.get("target_cache_effectiveness") or CACHE_EFFECTIVENESS.value)
    reach, best = target_ttl(rows, target)
    if reach is not None:
        lines.append(
            f"  the {target * 100:.0f} % cache-effectiveness target needs TTL "
            f"{fmt_ttl(num(reach['ttl_s']))}: predicted "
            f"{num(reach['cache_effectiveness']) * 100:.1f} % "
            f"(95 % band {num(reach['cache_effectiveness_low']) * 100:.1f}–"
            f"{num(reach['cache_effectiveness_high']) * 100:.1f} %), "
            + saving(num(reach["savings_per_day_usd"]))
        )
    elif best is not None:
        lines.append(
            f"  no TTL reaches the {target * 100:.0f} % target: the misses are cold keys "
            f"(best {num(best['cache_effectiveness']) * 100:.1f} % at TTL "
            f"{fmt_ttl(num(best['ttl_s']))})"
        )
    observed = meta.get("observed_ttl_s")
    rate = num(meta.get("sample_rate"))
    lines.append(
        f"  sample: {num(rows[0].get('sampled_keys')):,.0f} keys, "
        f"{max(num(r.get('sampled_reads')) for r in rows):,.0f} reads (rate {rate:g}); "
        f"observed TTL {fmt_ttl(num(observed)) if observed else 'none seen'}"
    )
    lines.append(f"  {'TTL':>8}{'L1 hit rate':>13}{'effectiveness':>15}{'95 % band':>15}"
                 f"{'cost/day':>12}")  # fmt: skip
    for r in rows:
        mark = " *" if r.get("observed") else ""
        band = (
            f"{num(r['cache_effectiveness_low']) * 100:.1f}–"
            f"{num(r['cache_effectiveness_high']) * 100:.1f} %"
        )
        lines.append(
            f"  {fmt_ttl(num(r['ttl_s'])):>8}{num(r['l1_hit_rate']) * 100:>11.1f} %"
            f"{num(r['cache_effectiveness']) * 100:>13.1f} %{band:>15}"
            f"{money(num(r['cost_per_day_usd'])):>12}{mark}"
        )
    lines.append(
        "  (* observed TTL) model: " + str(meta.get("model") or "see tiertrace._advisor.whatif")
    )
    return lines
