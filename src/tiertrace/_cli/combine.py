"""Add several processes' `tiertrace.stats()` snapshots up into one, as Prometheus would.

``tiertrace demo --workers N`` shows the combined figures of its worker processes with this;
the same function serves anyone who collects snapshots from several processes (one JSON file
per process, say) and wants the cluster-wide picture without Prometheus::

    combined = combine([json.load(open(p)) for p in paths])

What adds up and what cannot:

* counts add up (lookups, ``served_by``, and per tier accesses, reads, hits, errors, served,
  ``cost_usd``), and the ratios are recomputed from the sums: cache effectiveness is all the
  lookups served by level 1 over all lookups, a hit rate all hits over all reads — never an
  average of the processes' ratios;
* means are weighted by their counts (``mean_ms`` by accesses, the mean lookup latency by
  lookups);
* cost per day and per month are rates, so they add up; ``elapsed_s`` is the longest;
* percentiles do not add up: ``p50_ms``, ``p95_ms`` and ``p95_lookup_latency_ms`` are the
  highest of the processes' (an upper bound; Prometheus' ``histogram_quantile`` over the summed
  buckets gives the true cluster percentile);
* the targets are re-evaluated against the combined figures, with each target's threshold
  taken from the first snapshot; suggestions are the processes' suggestions, one per (kind,
  pattern, tier), the one with the most accesses kept.

A projection a process still reports as "collecting" (``None``) makes the sum ``None`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tiertrace._contract.targets import CACHE_EFFECTIVENESS, L1_HIT_RATE, LOOKUP_LATENCY

COUNTS = ("accesses", "reads", "hits", "errors", "served", "cost_usd")
PERCENTILES = ("p50_ms", "p95_ms")
RATES = ("cost_per_day_usd",)


def _add(values: Sequence[Any]) -> Any:
    if any(v is None for v in values):
        return None
    return sum(values)


def _tiers(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    names: list[str] = []
    for tiers in rows:
        names += [n for n in tiers if n not in names]
    out: dict[str, Any] = {}
    for name in names:
        present = [t[name] for t in rows if name in t]
        row: dict[str, Any] = {k: _add([r.get(k, 0) for r in present]) for k in COUNTS}
        row["level"] = present[0].get("level", 0)
        accesses = row["accesses"] or 0
        weighted = sum(r.get("mean_ms", 0.0) * r.get("accesses", 0) for r in present)
        row["mean_ms"] = weighted / accesses if accesses else 0.0
        for key in PERCENTILES:
            row[key] = max((r.get(key, 0.0) for r in present), default=0.0)
        row["hit_rate"] = row["hits"] / row["reads"] if row["reads"] else 0.0
        for key in RATES:
            row[key] = _add([r.get(key) for r in present])
        out[name] = row
    return out


def _view(views: Sequence[dict[str, Any]]) -> dict[str, Any]:
    tiers = _tiers([v.get("tiers", {}) for v in views])
    lookups = sum(v.get("lookups", 0) for v in views)
    served: dict[str, int] = {}
    for v in views:
        for name, count in v.get("served_by", {}).items():
            served[name] = served.get(name, 0) + count
    l1 = sum(served.get(n, 0) for n, row in tiers.items() if row["level"] == 1)
    latency = sum(v.get("mean_lookup_latency_ms", 0.0) * v.get("lookups", 0) for v in views)
    return {
        "lookups": lookups,
        "served_by": served,
        "cache_effectiveness": l1 / lookups if lookups else 0.0,
        "mean_lookup_latency_ms": latency / lookups if lookups else 0.0,
        "p95_lookup_latency_ms": max(
            (v.get("p95_lookup_latency_ms", 0.0) for v in views), default=0.0
        ),
        "lookup_cost_usd": sum(v.get("lookup_cost_usd", 0.0) for v in views),
        "cost_usd": sum(v.get("cost_usd", 0.0) for v in views),
        "cost_per_day_usd": _add([v.get("cost_per_day_usd") for v in views]),
        "cost_per_month_usd": _add([v.get("cost_per_month_usd") for v in views]),
        "elapsed_s": max((v.get("elapsed_s", 0.0) for v in views), default=0.0),
        "tiers": tiers,
    }


def _targets(first: Sequence[dict[str, Any]], view: dict[str, Any]) -> list[dict[str, Any]]:
    l1 = [r for r in view["tiers"].values() if r["level"] == 1 and r["reads"]]
    values = {
        CACHE_EFFECTIVENESS.name: view["cache_effectiveness"],
        LOOKUP_LATENCY.name: view["mean_lookup_latency_ms"],
        L1_HIT_RATE.name: sum(r["hits"] for r in l1) / sum(r["reads"] for r in l1) if l1 else 0.0,
    }
    rows = []
    for t in first:
        row = dict(t)
        if t.get("name") in values:
            v, limit = values[t["name"]], t.get("target", 0.0)
            row["value"] = v
            row["met"] = bool(view["lookups"]) and (v > limit if t.get("op") == ">" else v < limit)
        rows.append(row)
    return rows


def _suggestions(snaps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    best: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for snap in snaps:
        for s in snap.get("suggestions", []):
            key = (s.get("kind"), s.get("pattern"), s.get("tier"))
            if key not in best or (s.get("accesses") or 0) > (best[key].get("accesses") or 0):
                best[key] = s
    return list(best.values())


def combine(snaps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One snapshot of the same shape as `tiertrace.stats()` for all of ``snaps`` together."""
    snaps = [s for s in snaps if s]
    if not snaps:
        return {}
    combined: dict[str, Any] = {
        "generated_at": max(s.get("generated_at", "") for s in snaps),
        "window": _view([s["window"] for s in snaps]),
        "total": _view([s["total"] for s in snaps]),
    }
    combined["targets"] = _targets(snaps[0].get("targets", []), combined["window"])
    combined["suggestions"] = _suggestions(snaps)
    return combined
