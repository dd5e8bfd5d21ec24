"""Timing: µs per call (wall and CPU of the calling thread), interleaving, paired medians.

A batch is timed with the garbage collector off (setup objects are frozen out of its way by the
caller); each timed batch follows an untimed warm-up of a tenth of its size. Repetitions
activate the configurations in a rotated order (interleaving cancels drift), and overheads are
medians of the per-repetition differences to the reference (paired).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Timing = tuple[float, float]  # µs per call: wall clock, CPU time of the calling thread
T = TypeVar("T")


def time_sync(fn: Callable[[], Any], n: int) -> Timing:
    """µs per call of ``n`` calls, the collector off."""
    gc.collect(1)
    gc.disable()
    try:
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(n):
            fn()
        t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        return (t1 - t0) / 1e3 / n, (c1 - c0) / 1e3 / n
    finally:
        gc.enable()


def time_calls(
    calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]], collector: bool = False
) -> Timing:
    """µs per call of each ``fn(*args)`` of ``calls`` in turn (a replayed stream).

    The collector is off unless ``collector``: then its pauses are part of the time, as they
    are of a stream whose calls allocate.
    """
    gc.collect(1)
    if not collector:
        gc.disable()
    try:
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        for fn, args in calls:
            fn(*args)
        t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        n = len(calls)
        return (t1 - t0) / 1e3 / n, (c1 - c0) / 1e3 / n
    finally:
        gc.enable()


async def _time_async(fn: Callable[[], Any], n: int) -> Timing:
    c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
    for _ in range(n):
        await fn()
    t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
    return (t1 - t0) / 1e3 / n, (c1 - c0) / 1e3 / n


def time_async(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any], n: int) -> Timing:
    """µs per call of ``n`` awaited calls on ``loop``, the collector off."""
    gc.collect(1)
    gc.disable()
    try:
        return loop.run_until_complete(_time_async(fn, n))
    finally:
        gc.enable()


def timed_batch(
    fn: Callable[[], Any], n: int, loop: asyncio.AbstractEventLoop | None = None
) -> Timing:
    """An untimed warm-up of a tenth of ``n`` (at least 10), then ``n`` timed calls.

    With ``loop`` the calls are coroutines awaited on it.
    """
    warm = max(10, n // 10)
    if loop is not None:
        time_async(loop, fn, warm)
        return time_async(loop, fn, n)
    time_sync(fn, warm)
    return time_sync(fn, n)


def batch_size(us_per_call: float, target_s: float, least: int = 30) -> int:
    """Calls in a batch that lasts about ``target_s`` at ``us_per_call``."""
    return max(least, int(target_s * 1e6 / max(us_per_call, 1e-3)))


def rotated(items: Sequence[T], rep: int) -> list[T]:
    """``items`` starting at position ``rep`` (modulo), for interleaved repetitions."""
    k = rep % len(items) if items else 0
    return list(items[k:]) + list(items[:k])


def paired_diffs(runs: Sequence[float], reference: Sequence[float]) -> list[float]:
    return [a - b for a, b in zip(runs, reference, strict=True)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def iqr(values: Sequence[float]) -> list[float] | None:
    """[first quartile, third quartile], or None with fewer than 4 values."""
    if len(values) < 4:
        return None
    q = statistics.quantiles(values, n=4)
    return [q[0], q[2]]


def overhead_stats(runs: dict[str, list[float]]) -> dict[str, Any]:
    """Medians per configuration and paired overheads to raw, as the JSON reports them.

    Configurations missing from ``runs`` (an operation not measured under them) give None.
    """
    med = {c: median(v) for c, v in runs.items() if v}

    def over(config: str) -> float | None:
        if not runs.get(config):
            return None
        return median(paired_diffs(runs[config], runs["raw"]))

    def spread(config: str) -> list[float] | None:
        if not runs.get(config):
            return None
        return iqr(paired_diffs(runs[config], runs["raw"]))

    full, metrics, anchor = over("full"), over("metrics"), over("anchor")
    ratio = None
    if full is not None and anchor is not None and anchor > 0.05:
        ratio = full / anchor
    return {
        "full_overhead_iqr_us": spread("full"),
        "anchor_overhead_iqr_us": spread("anchor"),
        "raw_us": med["raw"],
        "tiertrace_full_us": med.get("full"),
        "tiertrace_metrics_us": med.get("metrics"),
        "anchor_us": med.get("anchor"),
        "anchor_metrics_us": med.get("anchor_metrics"),
        "full_overhead_us": full,
        "full_overhead_pct": None if full is None else 100.0 * full / med["raw"],
        "metrics_overhead_us": metrics,
        "anchor_overhead_us": anchor,
        "anchor_metrics_overhead_us": over("anchor_metrics"),
        "span_overhead_us": over("span"),
        "unsampled_overhead_us": over("unsampled"),
        "full_to_anchor_ratio": ratio,
    }


def per_call_summary(times_ns: Sequence[int]) -> dict[str, float]:
    """Mean, p50 and p99 in µs of individually timed calls (nanoseconds)."""
    ordered = sorted(times_ns)
    return {
        "mean_us": sum(ordered) / len(ordered) / 1000,
        "p50_us": ordered[len(ordered) // 2] / 1000,
        "p99_us": ordered[int(len(ordered) * 0.99)] / 1000,
    }
