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
observed rate; the advisor's suggestions, pre-cache candidates first; and, from a snapshot,
the TTL what-if: the smallest level-1 TTL that reaches the cache-effectiveness target, with the
predicted curve, its sample size and 95 % band (see `tiertrace._advisor.whatif`).

From a snapshot the ``total`` view (since ``init()``) is reported; ``--window`` reports the
rolling ``window`` view (the last 1,000 lookups) instead. From Prometheus the PromQL of the
design document is evaluated over ``--range`` (default ``1h``) through the HTTP API
(``/api/v1/query``); see `tiertrace._cli.prometheus`. Both sources become the same report
dictionary, so the text, JSON and HTML renderers serve both.

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
            cost_per_day_usd=num(row.get("cost_per_day_usd")),
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


def tier_row(**values: Any) -> dict[str, Any]:
    """One tier's report row; counts are integers when whole (``increase()`` may not be)."""
    counts = ("accesses", "reads", "hits", "served", "level")
    row = {k: (whole(v) if k in counts else v) for k, v in values.items()}
    row["cost_per_month_usd"] = row["cost_per_day_usd"] * MONTH_DAYS
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
) -> dict[str, Any]:
    """Assemble the report dictionary every renderer reads (see the module documentation)."""
    ordered = dict(sorted(tiers.items(), key=lambda item: (item[1]["level"], item[0])))
    lookups = sum(served_by.values())
    l1 = sum(served_by.get(n, 0.0) for n, r in ordered.items() if r["level"] == 1)
    per_day = sum(r["cost_per_day_usd"] for r in ordered.values())
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
        "cost": {"per_day_usd": per_day, "per_month_usd": per_day * MONTH_DAYS},
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
        lines.append(
            f"{name[:13]:<14}{r['level']:>5}{r['hit_rate'] * 100:>8.1f} %{r['mean_ms']:>9.2f}"
            f"{r['p50_ms']:>8.2f}{r['p95_ms']:>8.2f}{r['accesses']:>10,.0f}{r['served']:>9,.0f}"
            f"{money(r['cost_per_day_usd']):>12}"
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
    lines += ["", "cost projection (at the observed rate):"]
    lines.append(f"  {'tier':<14}{'per day':>14}{'per month':>16}")
    for name, r in report["tiers"].items():
        lines.append(
            f"  {name[:13]:<14}{money(r['cost_per_day_usd']):>14}"
            f"{money(r['cost_per_month_usd']):>16}"
        )
    cost = report["cost"]
    lines.append(
        f"  {'total':<14}{money(cost['per_day_usd']):>14}{money(cost['per_month_usd']):>16}"
    )
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
            f"saves {money(num(reach['savings_per_day_usd']))} per day"
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
