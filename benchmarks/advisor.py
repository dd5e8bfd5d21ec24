"""Benchmark of the optimization advisor: hot-path cost per call and memory under key churn.

Usage::

    python benchmarks/advisor.py [--quick] [--json FILE] [--strict]

1. *Cost per call*: a realistic stream replayed against one advisor with the real clock —
   90 % of lookups on 1,000 hot keys (20 key templates; 80 % of them L1 hits, the rest an
   L1 miss, a PostgreSQL hit and an L1 fill), 10 % on cold keys never seen before (L1 miss,
   PostgreSQL miss, Chroma hit, L1 fill). Each run replays 200,000 ``observe_*`` calls
   (after one warm-up run); the median of 5 runs is reported, as raw time per call and net
   of the loop-and-call overhead measured with a no-op of the same signature. The access-only
   and lookup-only parts of the stream are timed the same way.
2. *Memory*: 1,000,000 distinct keys (each: an L1 miss, a lookup served by PostgreSQL and an
   L1 fill) fed to a fresh advisor whose clock advances 7.2 ms per key, so the run spans two
   one-hour windows and buckets roll and expire as in production. Each series runs in a
   fresh interpreter; traced Python memory (tracemalloc) and resident set size (current
   from /proc, peak from ``resource``) are sampled every 100,000 keys; growth is measured
   from just after the advisor was created.
   Three series: one key template; 1,000 templates each busy in every bucket (the most
   ring memory patterns can take); every key its own pattern (patterns are held at 1,000).

Goals: at most 3 µs per access update, at most 20 MB growth. ``--strict`` exits 1 when a
goal is missed; ``--quick`` runs 3 runs of 100,000 calls and 300,000 keys.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import harness  # noqa: F401  (makes tiertrace importable from a checkout without an install)
from harness.timing import median, paired_diffs, time_calls
from tiertrace._advisor.advisor import Advisor

GOAL_US = 3.0
GOAL_MB = 20.0
Call = tuple[str, tuple[Any, ...]]


def workload(n_calls: int, rng: random.Random, cold_start: int) -> list[Call]:
    """About ``n_calls`` observe calls of the realistic mix (see the module docstring)."""
    calls: list[Call] = []
    cold = cold_start
    while len(calls) < n_calls:
        l1 = rng.uniform(0.0001, 0.0004)
        if rng.random() < 0.9:
            i = rng.randrange(1000)
            pattern, key = f"t{i % 20}:{{id}}", f"t{i % 20}:{i}"
            if rng.random() < 0.8:
                calls.append(("a", ("redis", 1, pattern, key, l1, 0.0001, True, False)))
                calls.append(("l", (pattern, key, "redis", 1, l1, 0.0001)))
                continue
            pg = rng.uniform(0.001, 0.006)
            calls.append(("a", ("redis", 1, pattern, key, l1, 0.0001, False, False)))
            calls.append(("a", ("postgresql", 2, "SELECT t", None, pg, 0.001, True, False)))
            calls.append(("a", ("redis", 1, pattern, key, l1, 0.0001, None, True)))
            calls.append(("l", (pattern, key, "postgresql", 2, l1 + pg, 0.0011)))
        else:
            cold += 1
            key, pg, ch = f"doc:{cold}", rng.uniform(0.001, 0.006), rng.uniform(0.01, 0.05)
            calls.append(("a", ("redis", 1, "doc:{id}", key, l1, 0.0001, False, False)))
            calls.append(("a", ("postgresql", 2, "SELECT docs", None, pg, 0.001, False, False)))
            calls.append(("a", ("chroma", 3, "memories", None, ch, 0.01, True, False)))
            calls.append(("a", ("redis", 1, "doc:{id}", key, l1, 0.0001, None, True)))
            calls.append(("l", ("doc:{id}", key, "chroma", 3, l1 + pg + ch, 0.0111)))
    return calls[:n_calls]


def _noop(*_: Any) -> None:
    return None


def _time(calls: Sequence[Call], access: Callable[..., None], lookup: Callable[..., None]) -> float:
    """µs per call, wall clock, the collector on (the advisor allocates as it learns keys)."""
    bound = [(access if kind == "a" else lookup, args) for kind, args in calls]
    return time_calls(bound, collector=True)[0]


def bench_calls(runs: int, n_calls: int) -> dict[str, Any]:
    rng = random.Random(42)
    loads = [workload(n_calls, rng, k * n_calls) for k in range(runs + 1)]
    adv = Advisor()
    _time(loads[0], adv.observe_access, adv.observe_lookup)  # warm-up: tables filled
    out: dict[str, Any] = {"runs": runs, "calls_per_run": n_calls}
    for label, pick in (("mixed", "al"), ("access", "a"), ("lookup", "l")):
        raw, base = [], []
        for load in loads[1:]:
            part = [c for c in load if c[0] in pick]
            raw.append(_time(part, adv.observe_access, adv.observe_lookup))
            base.append(_time(part, _noop, _noop))
        out[label] = {
            "raw_us": median(raw),
            "net_us": median(paired_diffs(raw, base)),
            "raw_runs_us": raw,
        }
    adv_tracked = adv.tracked()
    t0 = time.perf_counter()
    adv.suggestions()
    out["suggestions_ms"] = (time.perf_counter() - t0) * 1e3
    out["tracked"] = adv_tracked
    return out


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


MODES = {
    "template": "one key template",
    "busy-patterns": "1,000 templates, all busy all window",
    "pattern-per-key": "every key its own pattern",
}


def bench_memory(n_keys: int, every: int, mode: str, trace: bool) -> dict[str, Any]:
    """Feed ``n_keys`` distinct keys; sample traced memory (``trace``) or RSS (not)."""
    now = [0.0]
    gc.collect()
    if trace:
        tracemalloc.start()
    adv = Advisor(clock=lambda: now[0])
    base_traced = tracemalloc.get_traced_memory()[0] if trace else 0
    base_rss, base_peak = _rss_mb(), _peak_rss_mb()
    samples = []
    access, lookup = adv.observe_access, adv.observe_lookup
    t0 = time.perf_counter()
    for i in range(1, n_keys + 1):
        key = f"user:{i}:profile"
        if mode == "template":
            pattern = "user:{id}:profile"
        elif mode == "busy-patterns":
            pattern = f"t{i % 1000}:{{id}}"
        else:
            pattern = key
        now[0] += 0.0072
        access("redis", 1, pattern, key, 0.0002, 0.0001, False, False)
        lookup(pattern, key, "postgresql", 2, 0.003, 0.0011)
        access("redis", 1, pattern, key, 0.0002, 0.0001, None, True)
        if i % every == 0:
            gc.collect()
            sample: dict[str, Any] = {"keys_fed": i, **adv.tracked()}
            if trace:
                sample["traced_mb"] = (tracemalloc.get_traced_memory()[0] - base_traced) / 2**20
            else:
                sample["rss_mb"] = _rss_mb() - base_rss
                sample["peak_rss_mb"] = _peak_rss_mb() - base_peak
            samples.append(sample)
    elapsed = time.perf_counter() - t0
    if trace:
        tracemalloc.stop()
    return {"mode": mode, "seconds": elapsed, "samples": samples}


def memory_in_subprocess(n_keys: int, every: int, mode: str) -> dict[str, Any]:
    """`bench_memory` in fresh interpreters (one traced, one not), so RSS starts clean
    and is not inflated by tracemalloc's own bookkeeping."""
    runs = []
    for trace in (True, False):
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--memory-mode",
            mode,
            "--keys",
            str(n_keys),
            "--every",
            str(every),
        ] + (["--trace"] if trace else [])
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        runs.append(json.loads(done.stdout))
    traced, plain = runs
    samples = [{**t, **p} for t, p in zip(traced["samples"], plain["samples"], strict=True)]
    growth = max(max(s["traced_mb"], s["rss_mb"], s["peak_rss_mb"]) for s in samples)
    return {
        "mode": mode,
        "seconds": plain["seconds"],
        "us_per_key": plain["seconds"] / n_keys * 1e6,
        "samples": samples,
        "growth_mb": growth,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer runs and keys")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    ap.add_argument("--memory-mode", choices=list(MODES), help=argparse.SUPPRESS)
    ap.add_argument("--keys", type=int, default=1_000_000, help=argparse.SUPPRESS)
    ap.add_argument("--every", type=int, default=100_000, help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    if opts.memory_mode:  # child of memory_in_subprocess
        print(json.dumps(bench_memory(opts.keys, opts.every, opts.memory_mode, opts.trace)))
        return 0
    runs, n_calls = (3, 100_000) if opts.quick else (5, 200_000)
    n_keys, every = (300_000, 50_000) if opts.quick else (1_000_000, 100_000)

    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} CPU(s)")
    calls = bench_calls(runs, n_calls)
    print(f"\n1. cost per call (median of {runs} runs of {n_calls:,} calls)")
    print(f"   {'stream':<8} {'raw µs':>8} {'net µs':>8}   runs (raw µs)")
    for label in ("mixed", "access", "lookup"):
        r = calls[label]
        runs_txt = " ".join(f"{x:.2f}" for x in r["raw_runs_us"])
        print(f"   {label:<8} {r['raw_us']:>8.2f} {r['net_us']:>8.2f}   {runs_txt}")
    print(f"   suggestions(): {calls['suggestions_ms']:.2f} ms with {calls['tracked']}")

    memory = [memory_in_subprocess(n_keys, every, mode) for mode in MODES]
    for m in memory:
        what = MODES[m["mode"]]
        print(
            f"\n2. memory growth feeding {n_keys:,} distinct keys ({what}; "
            f"{m['us_per_key']:.2f} µs per key for its 3 calls)"
        )
        print(
            f"   {'keys fed':>10} {'traced MB':>10} {'RSS MB':>8} {'peak RSS MB':>12} "
            f"{'keys':>6} {'fills':>6} {'patterns':>8}"
        )
        for s in m["samples"]:
            print(
                f"   {s['keys_fed']:>10,} {s['traced_mb']:>10.2f} {s['rss_mb']:>8.2f} "
                f"{s['peak_rss_mb']:>12.2f} {s['keys']:>6} {s['fills']:>6} {s['patterns']:>8}"
            )

    access_us = calls["access"]["raw_us"]
    lookup_us = calls["lookup"]["raw_us"]
    growth = max(m["growth_mb"] for m in memory)  # worst of traced, RSS and peak-RSS growth
    ok_time = access_us <= GOAL_US and lookup_us <= GOAL_US
    ok_mem = growth <= GOAL_MB
    print(
        f"\ngoal ≤ {GOAL_US:g} µs per call: access {access_us:.2f} µs, lookup {lookup_us:.2f} µs"
        f" -> {'met' if ok_time else 'MISSED'}"
    )
    print(f"goal ≤ {GOAL_MB:g} MB growth: {growth:.2f} MB -> {'met' if ok_mem else 'MISSED'}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(
                {"calls": calls, "memory": memory, "goals_met": ok_time and ok_mem}, f, indent=2
            )
    return 1 if opts.strict and not (ok_time and ok_mem) else 0


if __name__ == "__main__":
    sys.exit(main())
