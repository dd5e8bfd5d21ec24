"""Reports of an overhead run: the machine, the goals, text tables, JSON, RESULTS.md markdown.

Standard library only, so that it also runs on its own to turn a saved run into the markdown
tables of ``benchmarks/RESULTS.md``::

    python benchmarks/harness/report.py overhead.json
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

# the hot-path goals, CPU time of the calling thread against the contrib anchor's span-only
# overhead in the same run: full mode at most 0.9 of it, metrics-only at most 0.2 of it
GOAL_OPS = ("redis_get_hit", "redis_set", "aredis_get_hit", "pg_select")
GOAL_FULL_RATIO, GOAL_METRICS_RATIO, GOAL_CHROMA_PCT = 0.9, 0.2, 5.0
GOAL_KEPT_METRICS, GOAL_KEPT_FULL = 70.0, 45.0  # throughput kept with 8 threads
PACKAGES = (
    "tiertrace",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-redis",
    "opentelemetry-instrumentation-psycopg",
    "opentelemetry-instrumentation-chromadb",
    "redis",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "chromadb",
    "wrapt",
)
FLOOR_LABELS = {
    "span": "recorded span, no attributes (start_span + end, batch processor)",
    "histogram": "SDK Histogram.record, 5 attributes",
    "slot": "pre-resolved slot (bisect into 17 bounds, count, sum, min, max)",
}


def machine(redis_version: str, pg_version: str, cpu: int | None) -> dict[str, Any]:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    packages: dict[str, str | None] = {}
    for dist in PACKAGES:
        try:
            packages[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            packages[dist] = None
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "pinned_cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "redis_server": redis_version,
        "postgresql": pg_version,
        "packages": packages,
    }


def goals(ops: dict[str, dict[str, Any]], tput: dict[str, Any] | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, unit: str, le: bool = True) -> None:
        met = value is not None and (value <= limit if le else value >= limit)
        found.append({"goal": name, "value": value, "limit": limit, "unit": unit, "met": met})

    for op in GOAL_OPS:
        cpu = ops.get(op, {}).get("cpu")
        if not cpu or not cpu.get("anchor_overhead_us"):
            continue
        anchor, label = cpu["anchor_overhead_us"], ops[op]["label"]
        add(f"{label}: full / anchor (CPU)", cpu["full_overhead_us"] / anchor, GOAL_FULL_RATIO, "×")
        add(
            f"{label}: metrics-only / anchor (CPU)",
            cpu["metrics_overhead_us"] / anchor,
            GOAL_METRICS_RATIO,
            "×",
        )
        if cpu.get("unsampled_overhead_us") is not None:  # metrics-only, tracing on
            add(
                f"{label}: unsampled request / anchor (CPU)",
                cpu["unsampled_overhead_us"] / anchor,
                GOAL_METRICS_RATIO,
                "×",
            )
    chroma = ops.get("chroma_query", {}).get("cpu")
    if chroma:
        pct = chroma["full_overhead_us"] / chroma["raw_us"] * 100
        add("Chroma query: full overhead (CPU)", pct, GOAL_CHROMA_PCT, "%")
    if tput:
        threads = tput["threads"]
        add(f"metrics-only throughput kept, {threads['label']}", threads["metrics_kept_pct"],
            GOAL_KEPT_METRICS, "%", False)  # fmt: skip
        add(f"full throughput kept, {threads['label']}", threads["kept_pct"], GOAL_KEPT_FULL,
            "%", False)  # fmt: skip
    return found


def write_json(report: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)


# -- text --------------------------------------------------------------------------------------
def _f(value: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if value is None else fmt.format(value)


def table(ops: dict[str, dict[str, Any]]) -> str:
    head = (
        f"{'operation':<33}{'raw µs':>9}{'full µs':>10}{'full +µs':>10}{'full +%':>9}"
        f"{'metrics +µs':>13}{'anchor +µs':>12}{'full/anchor':>13}"
    )
    lines = [head, "-" * len(head)]
    for row in ops.values():
        lines.append(
            f"{row['label']:<33}{row['raw_us']:>9.1f}{row['tiertrace_full_us']:>10.1f}"
            f"{row['full_overhead_us']:>+10.1f}{row['full_overhead_pct']:>+8.1f}%"
            f"{row['metrics_overhead_us']:>+13.1f}{row['anchor_overhead_us']:>+12.1f}"
            f"{_f(row['full_to_anchor_ratio'], '{:.2f}'):>13}"
        )
    return "\n".join(lines)


def cpu_table(ops: dict[str, dict[str, Any]]) -> str:
    head = (
        f"{'operation':<33}{'raw cpu µs':>11}{'full +µs':>10}{'metrics +µs':>13}"
        f"{'anchor +µs':>12}{'full/anchor':>13}"
    )
    lines = [head, "-" * len(head)]
    for row in ops.values():
        c = row["cpu"]
        lines.append(
            f"{row['label']:<33}{c['raw_us']:>11.1f}{c['full_overhead_us']:>+10.1f}"
            f"{c['metrics_overhead_us']:>+13.1f}{c['anchor_overhead_us']:>+12.1f}"
            f"{_f(c['full_to_anchor_ratio'], '{:.2f}'):>13}"
        )
    return "\n".join(lines)


def _anchor_metrics_rows(ops: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in ops.values() if r["cpu"].get("anchor_metrics_overhead_us") is not None]


def anchor_metrics_table(ops: dict[str, dict[str, Any]]) -> str:
    head = (
        f"{'operation (CPU µs)':<33}{'raw':>8}{'anchor +µs':>12}{'+ metrics +µs':>15}"
        f"{'full +µs':>10}{'metrics +µs':>13}"
    )
    lines = [head, "-" * len(head)]
    for row in _anchor_metrics_rows(ops):
        c = row["cpu"]
        lines.append(
            f"{row['label']:<33}{c['raw_us']:>8.1f}{c['anchor_overhead_us']:>+12.1f}"
            f"{c['anchor_metrics_overhead_us']:>+15.1f}{c['full_overhead_us']:>+10.1f}"
            f"{c['metrics_overhead_us']:>+13.1f}"
        )
    return "\n".join(lines)


def _span_rows(ops: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in ops.values() if r["cpu"].get("span_overhead_us") is not None]


SPAN_TITLE = "A bare recorded span around the call, where it runs (CPU µs)"
SPAN_HEAD = ("operation", "raw", "bare span +µs", "bare span +%", "full +µs", "full − bare span",
             "metrics +µs")  # fmt: skip


def _span_cells(row: dict[str, Any]) -> list[str]:
    c = row["cpu"]
    return [
        row["label"],
        f"{c['raw_us']:.1f}",
        f"{c['span_overhead_us']:+.1f}",
        f"{100.0 * c['span_overhead_us'] / c['raw_us']:+.1f} %",
        f"{c['full_overhead_us']:+.1f}",
        f"{c['full_overhead_us'] - c['span_overhead_us']:+.1f}",
        f"{c['metrics_overhead_us']:+.1f}",
    ]


def _text_table(head: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int]) -> str:
    def line(cells: Sequence[str]) -> str:
        first, *rest = zip(cells, widths, strict=True)
        return f"{first[0]:<{first[1]}}" + "".join(f"{v:>{w}}" for v, w in rest)

    top = line(head)
    return "\n".join([top, "-" * len(top), *(line(r) for r in rows)])


def span_table(ops: dict[str, dict[str, Any]]) -> str:
    rows = [_span_cells(r) for r in _span_rows(ops)]
    return _text_table(SPAN_HEAD, rows, (33, 8, 15, 14, 10, 18, 13))


def _unsampled_rows(ops: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in ops.values() if r["cpu"].get("unsampled_overhead_us") is not None]


UNSAMPLED_TITLE = "Tracing on, the request not sampled (CPU µs)"
UNSAMPLED_HEAD = ("operation", "raw", "anchor +µs", "tracing off +µs", "/ anchor",
                  "unsampled +µs", "/ anchor")  # fmt: skip


def _unsampled_cells(row: dict[str, Any]) -> list[str]:
    c = row["cpu"]
    anchor = c["anchor_overhead_us"]
    return [
        row["label"],
        f"{c['raw_us']:.1f}",
        f"{anchor:+.1f}",
        f"{c['metrics_overhead_us']:+.1f}",
        f"{c['metrics_overhead_us'] / anchor:.3f}",
        f"{c['unsampled_overhead_us']:+.1f}",
        f"{c['unsampled_overhead_us'] / anchor:.3f}",
    ]


def unsampled_table(ops: dict[str, dict[str, Any]]) -> str:
    rows = [_unsampled_cells(r) for r in _unsampled_rows(ops)]
    return _text_table(UNSAMPLED_HEAD, rows, (33, 8, 12, 17, 10, 15, 10))


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    meth = report["method"]
    print(
        f"\n{m['cpu_model']}, {m['cores']} cores (pinned to CPU {m['pinned_cpu']}), "
        f"Python {m['python']}, {m['redis_server'].split(' sha')[0]}, PostgreSQL {m['postgresql']}"
    )
    print(
        f"median of {meth['repetitions']} interleaved repetitions, "
        f"~{meth['target_batch_ms']:.0f} ms raw batches; +µs = median paired difference to raw\n"
    )
    print(table(report["ops"]))
    print("\nCPU time of the calling thread (what other load on the machine disturbs least):\n")
    print(cpu_table(report["ops"]))
    if _anchor_metrics_rows(report["ops"]):
        print(
            "\npsycopg contrib anchor with OTEL_SEMCONV_STABILITY_OPT_IN=database "
            "(+ db.client.operation.duration), CPU:\n"
        )
        print(anchor_metrics_table(report["ops"]))
    if _span_rows(report["ops"]):
        print(f"\n{SPAN_TITLE}:\n")
        print(span_table(report["ops"]))
    if _unsampled_rows(report["ops"]):
        print(f"\n{UNSAMPLED_TITLE}:\n")
        print(unsampled_table(report["ops"]))
    floor = report.get("floor")
    if floor:
        print("\nSDK floor (warm loop, CPU µs per call; wall in parentheses):")
        for row, label in FLOOR_LABELS.items():
            print(
                f"  {label:<68}{floor[f'{row}_us']:>8.2f}   ({floor['wall_us'][f'{row}_us']:.2f})"
            )
    tput = report["throughput"]
    if tput:
        print("\nthroughput (Redis GET hit, ops/s):")
        for kind in ("threads", "tasks"):
            t = tput[kind]
            print(
                f"  {t['label']:<40} raw {t['raw_ops_s']:>9.0f}   full {t['full_ops_s']:>9.0f}"
                f"   kept {t['kept_pct']:.1f} %   metrics {t['metrics_ops_s']:>9.0f}"
                f"   kept {t['metrics_kept_pct']:.1f} %"
            )
    print("\ngoals:")
    for g in report["goals"]:
        value = _f(g["value"], "{:.2f}")
        mark = "ok  " if g["met"] else "MISS"
        sign = "≥" if "throughput" in g["goal"] else "≤"
        print(f"  {mark} {g['goal']}: {value} {g['unit']} (goal {sign} {g['limit']} {g['unit']})")
    print(f"\nelapsed {meth['elapsed_s']:.0f} s")


# -- markdown (RESULTS.md) ---------------------------------------------------------------------
def _md(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def markdown(report: dict[str, Any]) -> str:
    """The tables of ``benchmarks/RESULTS.md`` for one run."""
    ops = report["ops"]
    out = ["## Latency per call (wall clock)", ""]
    out.append(
        "| operation | raw µs | full µs | full +µs | full +% | metrics +µs | anchor +µs "
        "| full/anchor |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in ops.values():
        out.append(
            f"| {r['label']} | {r['raw_us']:.1f} | {r['tiertrace_full_us']:.1f} "
            f"| {r['full_overhead_us']:+.1f} | {r['full_overhead_pct']:+.1f}% "
            f"| {r['metrics_overhead_us']:+.1f} | {r['anchor_overhead_us']:+.1f} "
            f"| {_md(r['full_to_anchor_ratio'], '{:.2f}')} |"
        )
    out += ["", "## CPU time of the calling thread", ""]
    out.append("| operation | raw CPU µs | full +µs | metrics +µs | anchor +µs | full/anchor |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for r in ops.values():
        c = r["cpu"]
        out.append(
            f"| {r['label']} | {c['raw_us']:.1f} | {c['full_overhead_us']:+.1f} "
            f"| {c['metrics_overhead_us']:+.1f} | {c['anchor_overhead_us']:+.1f} "
            f"| {_md(c['full_to_anchor_ratio'], '{:.2f}')} |"
        )
    rows = _anchor_metrics_rows(ops)
    if rows:
        out += ["", "## psycopg anchor with `db.client.operation.duration` (CPU µs)", ""]
        out.append(
            "| operation | raw | anchor +µs | anchor with metrics +µs | full +µs | metrics +µs |"
        )
        out.append("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            c = r["cpu"]
            out.append(
                f"| {r['label']} | {c['raw_us']:.1f} | {c['anchor_overhead_us']:+.1f} "
                f"| {c['anchor_metrics_overhead_us']:+.1f} | {c['full_overhead_us']:+.1f} "
                f"| {c['metrics_overhead_us']:+.1f} |"
            )
    rows = _span_rows(ops)
    if rows:
        out += ["", f"## {SPAN_TITLE}", "", "| " + " | ".join(SPAN_HEAD) + " |"]
        out.append("|---" + "|---:" * (len(SPAN_HEAD) - 1) + "|")
        out += ["| " + " | ".join(_span_cells(r)) + " |" for r in rows]
    rows = _unsampled_rows(ops)
    if rows:
        out += ["", f"## {UNSAMPLED_TITLE}", "", "| " + " | ".join(UNSAMPLED_HEAD) + " |"]
        out.append("|---" + "|---:" * (len(UNSAMPLED_HEAD) - 1) + "|")
        out += ["| " + " | ".join(_unsampled_cells(r)) + " |" for r in rows]
    floor = report.get("floor")
    if floor:
        out += ["", "## SDK floor (warm loop, same run)", ""]
        out.append("| call | CPU µs | wall µs |")
        out.append("|---|---:|---:|")
        for row, label in FLOOR_LABELS.items():
            out.append(
                f"| {label} | {floor[f'{row}_us']:.2f} | {floor['wall_us'][f'{row}_us']:.2f} |"
            )
    tput = report.get("throughput")
    if tput:
        out += [
            "",
            f"## Throughput (Redis GET hit, collector on, {tput['rounds']} × "
            f"{tput['seconds_per_run']:g} s per configuration)",
            "",
        ]
        out.append("| load | raw ops/s | full ops/s | kept | metrics ops/s | kept |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for kind in ("threads", "tasks"):
            t = tput[kind]
            out.append(
                f"| {t['label']} | {t['raw_ops_s']:,.0f} | {t['full_ops_s']:,.0f} "
                f"| {t['kept_pct']:.1f} % | {t['metrics_ops_s']:,.0f} "
                f"| {t['metrics_kept_pct']:.1f} % |"
            )
    out += ["", "## Goals", "", "| goal | measured | |", "|---|---|---|"]
    for g in report["goals"]:
        sign = "≥" if "throughput" in g["goal"] else "≤"
        value = _md(g["value"], "{:.2f}")
        out.append(
            f"| {g['goal']} ({sign} {g['limit']:g} {g['unit']}) | {value} {g['unit']} "
            f"| {'met' if g['met'] else 'missed'} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: report.py OVERHEAD_JSON", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        print(markdown(json.load(f)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
