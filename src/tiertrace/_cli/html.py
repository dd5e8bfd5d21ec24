"""``tiertrace report --html FILE``: the memory-tier dashboard as one self-contained HTML page.

::

    tiertrace report --snapshot run.json --html report.html
    tiertrace report --prometheus http://127.0.0.1:9090 --range 1d --html daily.html

The page has the widgets of the "Memory tiers" Grafana dashboard — served-by pie
(``#served-by-pie``), latency bars per tier with mean / p50 / p95 (``#latency-bars``), cache
effectiveness gauge with its 70 % mark (``#cache-gauge``), one card per tier with hit rate,
mean latency, accesses and cost per day (``#tier-cards``), every one of the advisor's
suggestions (``#suggestions``), the TTL what-if (``#ttl-curve``: predicted cache
effectiveness per level-1 TTL with its 95 % band, the target line, the observed TTL, the cost
per day and the sample size) — plus the daily and monthly cost projection
(``#cost-projection``: "collecting (N s of 60 s)" until a tier has been observed long enough,
the prices used and how to set real ones) and the targets. It is a single file with inline
CSS and inline SVG only: no script, no font, no stylesheet or image from anywhere else, so it
can be mailed, archived as a CI artifact or opened offline. Every number is also written as text.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from tiertrace._advisor.whatif import fmt_ttl, target_ttl
from tiertrace._cli.report import (
    TARGET_LABELS,
    fmt_target,
    money,
    num,
    price_lines,
    saving,
    source_line,
    tier_projection,
    total_projection,
)

COLORS = {"redis": "#d9480f", "postgresql": "#1c7ed6", "chroma": "#7048e8", "none": "#adb5bd"}
PALETTE = ("#2b8a3e", "#e67700", "#c2255c", "#0b7285", "#5f3dc4", "#495057")
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0;background:#f1f3f5;color:#212529}
header{background:#212529;color:#f8f9fa;padding:16px 28px}
header h1{margin:0 0 4px;font-size:22px}header p{margin:0;color:#ced4da;font-size:14px}
main{display:grid;grid-template-columns:repeat(3,1fr);gap:18px;padding:20px 28px}
section{background:#fff;border-radius:8px;padding:14px 18px;box-shadow:0 1px 3px #0002}
section h2{font-size:15px;margin:0 0 10px;color:#495057;text-transform:uppercase;
letter-spacing:.04em}
.wide{grid-column:span 3}.two{grid-column:span 2}
.legend{list-style:none;padding:0;margin:8px 0 0;font-size:14px}
.legend li{margin:3px 0}.sw{display:inline-block;width:11px;height:11px;border-radius:2px;
margin-right:6px;vertical-align:-1px}
.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{flex:1;min-width:180px;border-left:6px solid #adb5bd;background:#f8f9fa;
border-radius:6px;padding:10px 14px}
.card h3{margin:0 0 6px;font-size:17px}.card dl{margin:0;display:grid;
grid-template-columns:auto auto;gap:2px 12px;font-size:14px}.card dd{margin:0;text-align:right;
font-weight:600;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%;font-size:14px;font-variant-numeric:tabular-nums}
th,td{padding:5px 8px;border-bottom:1px solid #dee2e6;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}tfoot td{font-weight:700}
.met{color:#2b8a3e;font-weight:700}.missed{color:#c92a2a;font-weight:700}
ol{margin:0;padding-left:22px;font-size:14px}ol li{margin:4px 0}
.kind{font-size:12px;background:#e9ecef;border-radius:4px;padding:1px 5px;margin-right:6px}
svg text{font-family:inherit}
"""


def color(name: str, index: int) -> str:
    return COLORS.get(name, PALETTE[index % len(PALETTE)])


def _point(cx: float, cy: float, r: float, turn: float) -> tuple[float, float]:
    angle = 2 * math.pi * turn - math.pi / 2  # 0 = top, clockwise
    return cx + r * math.cos(angle), cy + r * math.sin(angle)


def pie(report: dict[str, Any]) -> str:
    """The served-by pie chart (SVG arcs) with its legend."""
    total = sum(report["served_by"].values())
    names = list(report["served_by"])
    slices, legend, start = [], [], 0.0
    for i, name in enumerate(names):
        count = report["served_by"][name]
        share = count / total if total else 0.0
        fill = color(name, i)
        label = escape(f"{name}: {share * 100:.1f} % ({count:,.0f} lookups)")
        legend.append(f'<li><span class="sw" style="background:{fill}"></span>{label}</li>')
        if share >= 0.9999:
            slices.append(
                f'<circle cx="110" cy="110" r="100" fill="{fill}"><title>{label}</title></circle>'
            )
        elif share > 0:
            (x0, y0), (x1, y1) = _point(110, 110, 100, start), _point(110, 110, 100, start + share)
            large = 1 if share > 0.5 else 0
            slices.append(
                f'<path d="M110,110 L{x0:.2f},{y0:.2f} A100,100 0 {large} 1 {x1:.2f},{y1:.2f} Z" '
                f'fill="{fill}" stroke="#fff" stroke-width="1.5"><title>{label}</title></path>'
            )
        start += share
    if not total:
        slices.append('<circle cx="110" cy="110" r="100" fill="#e9ecef"></circle>')
    svg = f'<svg viewBox="0 0 220 220" width="220" height="220" role="img">{"".join(slices)}</svg>'
    return (
        f'<section id="served-by-pie"><h2>Served by</h2>{svg}'
        f'<ul class="legend">{"".join(legend)}</ul></section>'
    )


def bars(report: dict[str, Any]) -> str:
    """Grouped latency bars per tier: mean, p50, p95 (milliseconds)."""
    stats = (("mean_ms", "mean", 1.0), ("p50_ms", "p50", 0.6), ("p95_ms", "p95", 0.35))
    tiers = report["tiers"]
    top = max([r[k] for r in tiers.values() for k, _, _ in stats] + [0.001])
    width, base, scale = 160 * max(len(tiers), 1) + 40, 200, 170 / top
    parts = [f'<line x1="30" y1="{base}" x2="{width - 5}" y2="{base}" stroke="#868e96"/>']
    for i, (name, row) in enumerate(tiers.items()):
        x0 = 50 + i * 160
        for j, (key, label, alpha) in enumerate(stats):
            value = row[key]
            h = max(value * scale, 1.0)
            x = x0 + j * 44
            parts.append(
                f'<rect x="{x}" y="{base - h:.1f}" width="38" height="{h:.1f}" '
                f'fill="{color(name, i)}" fill-opacity="{alpha}">'
                f"<title>{escape(f'{name} {label}: {value:.3f} ms')}</title></rect>"
                f'<text x="{x + 19}" y="{base - h - 4:.1f}" font-size="11" text-anchor="middle">'
                f"{value:.2f}</text>"
                f'<text x="{x + 19}" y="{base + 13}" font-size="11" text-anchor="middle" '
                f'fill="#495057">{label}</text>'
            )
        parts.append(
            f'<text x="{x0 + 63}" y="{base + 32}" font-size="14" text-anchor="middle" '
            f'font-weight="600">{escape(name)}</text>'
        )
    svg = (
        f'<svg viewBox="0 0 {width} 240" width="100%" style="max-height:300px" role="img">'
        f"{''.join(parts)}</svg>"
    )
    return f'<section id="latency-bars" class="two"><h2>Latency per tier (ms)</h2>{svg}</section>'


def _arc(f0: float, f1: float, r: float) -> str:
    def at(f: float) -> tuple[float, float]:
        angle = math.pi * (1 - f)
        return 110 + r * math.cos(angle), 120 - r * math.sin(angle)

    (x0, y0), (x1, y1) = at(f0), at(f1)
    return f"M{x0:.2f},{y0:.2f} A{r},{r} 0 0 1 {x1:.2f},{y1:.2f}"


def gauge(report: dict[str, Any]) -> str:
    """Cache effectiveness as a half-circle gauge with the target mark."""
    value = min(max(report["cache_effectiveness"], 0.0), 1.0)
    target = next((t for t in report["targets"] if t["name"] == "cache_effectiveness"), None)
    mark = target["target"] if target else 0.7
    met = bool(target and target["met"])
    fill = "#2b8a3e" if met else "#e8590c"
    angle = math.pi * (1 - mark)
    tx0, ty0 = 110 + 70 * math.cos(angle), 120 - 70 * math.sin(angle)
    tx1, ty1 = 110 + 104 * math.cos(angle), 120 - 104 * math.sin(angle)
    svg = (
        '<svg viewBox="0 0 220 150" width="260" height="177" role="img">'
        f'<path d="{_arc(0, 1, 88)}" fill="none" stroke="#e9ecef" stroke-width="22"/>'
        + (
            f'<path d="{_arc(0, value, 88)}" fill="none" stroke="{fill}" stroke-width="22"/>'
            if value > 0
            else ""
        )
        + f'<line x1="{tx0:.2f}" y1="{ty0:.2f}" x2="{tx1:.2f}" y2="{ty1:.2f}" stroke="#212529" '
        'stroke-width="3"/>'
        f'<text x="{tx1:.2f}" y="{ty1 - 4:.2f}" font-size="11" text-anchor="middle">'
        f"{mark * 100:.0f} %</text>"
        f'<text x="110" y="112" font-size="28" font-weight="700" text-anchor="middle" '
        f'fill="{fill}">{value * 100:.1f} %</text>'
        '<text x="110" y="138" font-size="12" text-anchor="middle" fill="#495057">'
        "lookups served by L1</text></svg>"
    )
    verdict = "met" if met else "missed"
    return (
        f'<section id="cache-gauge"><h2>Cache effectiveness</h2>{svg}'
        f"<p>{value * 100:.1f} % against a target of {mark * 100:.0f} %: "
        f'<span class="{verdict}">{verdict}</span></p></section>'
    )


def cards(report: dict[str, Any]) -> str:
    """One card per tier: hit rate, mean latency, accesses, cost per day."""
    out = []
    for i, (name, r) in enumerate(report["tiers"].items()):
        rows = (
            ("hit rate", f"{r['hit_rate'] * 100:.1f} %"),
            ("mean latency", f"{r['mean_ms']:.2f} ms"),
            ("accesses", f"{r['accesses']:,.0f}"),
            ("lookups served", f"{r['served']:,.0f}"),
            ("cost/day", tier_projection(report, r)),
        )
        dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
        out.append(
            f'<div class="card" style="border-left-color:{color(name, i)}">'
            f"<h3>{escape(name)} <small>L{r['level']}</small></h3><dl>{dl}</dl></div>"
        )
    return (
        '<section id="tier-cards" class="wide"><h2>Tiers</h2>'
        f'<div class="cards">{"".join(out)}</div></section>'
    )


def costs(report: dict[str, Any]) -> str:
    """The daily and monthly cost projection per tier and in total."""
    body = "".join(
        f"<tr><td>{escape(n)}</td><td>{escape(tier_projection(report, r))}</td>"
        f"<td>{escape(tier_projection(report, r, True))}</td></tr>"
        for n, r in report["tiers"].items()
    )
    c = report["cost"]
    note = "At each tier's observed rate; a month is 30 days."
    if c["projection"] == "collecting":
        note += (
            f" No projection before {c['min_projection_window_s']:g} s of traffic per tier;"
            f" cost so far {money(c['spent_usd'])}."
        )
    prices = "".join(f"<p><small>{escape(line)}</small></p>" for line in price_lines(report))
    return (
        '<section id="cost-projection"><h2>Cost projection</h2><table><thead><tr><th>tier</th>'
        f"<th>per day</th><th>per month</th></tr></thead><tbody>{body}</tbody><tfoot><tr>"
        f"<td>total</td><td>{escape(total_projection(report))}</td>"
        f"<td>{escape(total_projection(report, True))}</td>"
        f"</tr></tfoot></table><p><small>{escape(note)}</small></p>{prices}</section>"
    )


def targets(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(TARGET_LABELS.get(t['name'], t['name']))}</td>"
        f"<td>{escape(fmt_target(t['name'], t['value']))}</td>"
        f"<td>{escape(t['op'] + ' ' + fmt_target(t['name'], t['target']))}</td>"
        f'<td class="{"met" if t["met"] else "missed"}">{"met" if t["met"] else "missed"}</td></tr>'
        for t in report["targets"]
    )
    return (
        '<section id="targets"><h2>Targets</h2><table><thead><tr><th>target</th><th>value</th>'
        f"<th>goal</th><th></th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def suggestions(report: dict[str, Any]) -> str:
    """Every one of the advisor's findings, pre-cache candidates first, with their count."""
    items = "".join(
        f'<li><span class="kind">{escape(str(s.get("kind")))}</span>'
        f"{escape(str(s.get('message')))}</li>"
        for s in report["suggestions"]
    )
    count = len(report["suggestions"])
    body = f"<ol>{items}</ol>" if items else "<p>No suggestions: nothing to pre-cache.</p>"
    return f'<section id="suggestions" class="wide"><h2>Suggestions ({count})</h2>{body}</section>'


def ttl_curve(report: dict[str, Any]) -> str:
    """The TTL what-if: effectiveness per TTL (log axis) with its band, target and cost."""
    rows = sorted(report.get("ttl_curve") or [], key=lambda r: num(r.get("ttl_s")))
    meta = report.get("whatif") or {}
    if not rows:
        status = str(meta.get("status") or "no curve in this report")
        if status == "collecting":
            status = (
                f"collecting: no prediction before {num(meta.get('min_window_s')):g} s of "
                f"sampled L1 reads"
            )
        return (
            '<section id="ttl-curve" class="wide"><h2>TTL what-if</h2>'
            f"<p>{escape(status)}</p></section>"
        )
    target = num(meta.get("target_cache_effectiveness") or 0.7)
    w, h, left, right, top, bottom = 960, 300, 56, 70, 14, 40
    lo, hi = math.log10(num(rows[0]["ttl_s"])), math.log10(num(rows[-1]["ttl_s"]))
    span = hi - lo or 1.0
    top_cost = max(num(r["cost_per_day_usd_high"]) for r in rows) or 1.0

    def x(ttl: float) -> float:
        return left + (math.log10(ttl) - lo) / span * (w - left - right)

    def y(share: float) -> float:
        return top + (1 - share) * (h - top - bottom)

    def yc(usd: float) -> float:
        return top + (1 - usd / top_cost) * (h - top - bottom)

    parts = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{w - right}" y2="{y(tick):.1f}" '
            f'stroke="#e9ecef"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{tick * 100:.0f} %</text>'
            f'<text x="{w - right + 6}" y="{yc(tick * top_cost) + 4:.1f}" font-size="11" '
            f'fill="#e67700">{escape(money(tick * top_cost))}</text>'
        )
    for r in rows:
        ttl = num(r["ttl_s"])
        parts.append(
            f'<text x="{x(ttl):.1f}" y="{h - bottom + 16}" font-size="11" '
            f'text-anchor="middle">{escape(fmt_ttl(ttl).replace(" ", ""))}</text>'
        )
    band = [(x(num(r["ttl_s"])), y(num(r["cache_effectiveness_high"]))) for r in rows]
    band += [(x(num(r["ttl_s"])), y(num(r["cache_effectiveness_low"]))) for r in rows[::-1]]
    parts.append(
        '<polygon fill="#2b8a3e" fill-opacity="0.18" points="'
        + " ".join(f"{a:.1f},{b:.1f}" for a, b in band)
        + '"><title>95 % band</title></polygon>'
    )
    line = " ".join(
        f"{x(num(r['ttl_s'])):.1f},{y(num(r['cache_effectiveness'])):.1f}" for r in rows
    )
    cost = " ".join(f"{x(num(r['ttl_s'])):.1f},{yc(num(r['cost_per_day_usd'])):.1f}" for r in rows)
    parts.append(f'<polyline fill="none" stroke="#e67700" stroke-dasharray="5 4" points="{cost}"/>')
    parts.append(f'<polyline fill="none" stroke="#2b8a3e" stroke-width="2.5" points="{line}"/>')
    parts.append(
        f'<line x1="{left}" y1="{y(target):.1f}" x2="{w - right}" y2="{y(target):.1f}" '
        f'stroke="#c92a2a" stroke-dasharray="6 4"/><text x="{left + 4}" y="{y(target) - 5:.1f}" '
        f'font-size="11" fill="#c92a2a">target {target * 100:.0f} %</text>'
    )
    for r in rows:
        ttl, share = num(r["ttl_s"]), num(r["cache_effectiveness"])
        tip = escape(
            f"TTL {fmt_ttl(ttl)}: cache effectiveness {share * 100:.1f} % "
            f"({num(r['cache_effectiveness_low']) * 100:.1f}–"
            f"{num(r['cache_effectiveness_high']) * 100:.1f} %), L1 hit rate "
            f"{num(r['l1_hit_rate']) * 100:.1f} %, {money(num(r['cost_per_day_usd']))} per day"
        )
        big = bool(r.get("observed"))
        parts.append(
            f'<circle cx="{x(ttl):.1f}" cy="{y(share):.1f}" r="{6 if big else 3.5}" '
            f'fill="{"#fff" if big else "#2b8a3e"}" stroke="#2b8a3e" stroke-width="2">'
            f"<title>{tip}</title></circle>"
        )
        if big:
            parts.append(
                f'<text x="{x(ttl):.1f}" y="{y(share) + 20:.1f}" font-size="11" '
                f'text-anchor="middle">observed</text>'
            )
    svg = (
        f'<svg viewBox="0 0 {w} {h}" width="100%" style="max-height:340px" role="img">'
        f"{''.join(parts)}</svg>"
    )
    reach, best = target_ttl(rows, target)
    if reach is not None:
        verdict = (
            f"The {target * 100:.0f} % target needs TTL {fmt_ttl(num(reach['ttl_s']))}: "
            f"predicted {num(reach['cache_effectiveness']) * 100:.1f} % "
            f"({num(reach['cache_effectiveness_low']) * 100:.1f}–"
            f"{num(reach['cache_effectiveness_high']) * 100:.1f} %), "
            f"{saving(num(reach['savings_per_day_usd']))}."
        )
    else:
        assert best is not None
        verdict = (
            f"No TTL reaches the {target * 100:.0f} % target: the misses are cold keys (best "
            f"{num(best['cache_effectiveness']) * 100:.1f} % at TTL {fmt_ttl(num(best['ttl_s']))})."
        )
    reads = max(num(r.get("sampled_reads")) for r in rows)
    sample = (
        f"Sample: {num(rows[0].get('sampled_keys')):,.0f} keys, {reads:,.0f} reads "
        f"(rate {num(meta.get('sample_rate')):g}). Shaded: 95 % band over the sampled keys. "
        f"Dashed orange: cost per day of every tier (right axis). "
        f"Model: {meta.get('model') or 'see tiertrace._advisor.whatif'}."
    )
    legend = (
        '<ul class="legend"><li><span class="sw" style="background:#2b8a3e"></span>predicted '
        'cache effectiveness</li><li><span class="sw" style="background:#e67700"></span>'
        'predicted cost per day</li><li><span class="sw" style="background:#c92a2a"></span>'
        "target</li></ul>"
    )
    return (
        f'<section id="ttl-curve" class="wide"><h2>TTL what-if (level 1)</h2>'
        f"<p><strong>{escape(verdict)}</strong></p>{svg}{legend}"
        f"<p><small>{escape(sample)}</small></p></section>"
    )


def render_html(report: dict[str, Any]) -> str:
    """The whole page (see the module documentation)."""
    subtitle = source_line(report).removeprefix("tiertrace report: ")
    if report.get("generated_at"):
        subtitle += f" — generated {report['generated_at']}"
    widgets = (
        pie(report)
        + bars(report)
        + gauge(report)
        + targets(report)
        + costs(report)
        + cards(report)
        + ttl_curve(report)
        + suggestions(report)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tiertrace report</title><style>{CSS}</style></head><body>"
        f"<header><h1>tiertrace — memory tiers</h1><p>{escape(subtitle)}</p></header>"
        f"<main>{widgets}</main></body></html>\n"
    )
